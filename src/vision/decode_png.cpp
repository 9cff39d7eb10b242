// PNG through libpng, converted to RGB the way Pillow does (ref: Pillow PngImagePlugin _MODES,
// Unpack.c, Convert.c):
//   gray 1/2/4-bit     scaled to 8 bits (x255, x85, x17), replicated
//   gray 8-bit         replicated;             gray + alpha 8-bit: alpha dropped
//   gray 16-bit        Pillow mode "I;16"; convert("RGB") CLIPS to 255 (values >= 256 -> 255)
//   gray + alpha 16    Pillow unpacks "LA;16B" to RGBA keeping the high byte; alpha dropped
//   RGB(A) 16-bit      high byte of each sample ("RGB;16B", "RGBA;16B"); alpha dropped
//   palette            expanded through PLTE; indices past its end read Pillow's default
//                      palette, a gray ramp (i, i, i); tRNS is ignored like any transparency
// libpng reports errors by longjmp. Every libpng call that can fail runs inside one of the two
// C-style functions below (read_header, read_pixels), whose frames hold no object with a
// destructor, so the jump never skips one; C++ owns the memory outside them.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "vision/codecs.h"

namespace unicorn::vision::detail {

namespace {

// All state that libpng's callbacks and the setjmp frames touch: plain data only.
struct PngJob {
  png_structp png = nullptr;
  png_infop info = nullptr;
  const uint8_t* data = nullptr;  // the whole file
  size_t size = 0;
  size_t pos = 0;
  char message[256] = {};  // libpng's error text

  // IHDR
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0, interlace = 0;

  // Decoding: raw rows (after png_set_packing only) and their RGB destination.
  size_t raw_row_bytes = 0;
  uint8_t* raw = nullptr;        // one row, or the whole image when interlaced
  png_bytep* raw_rows = nullptr;  // interlaced: one pointer per row of `raw`
  uint8_t* rgb = nullptr;         // [height, width, 3]
  uint8_t palette[256 * 3] = {};
};

void on_png_error(png_structp png, png_const_charp message) {
  auto* job = static_cast<PngJob*>(png_get_error_ptr(png));
  std::snprintf(job->message, sizeof job->message, "%s", message);
  png_longjmp(png, 1);
}

// Pillow decodes despite libpng's warnings (a bad ancillary chunk, ...); so do we, silently.
void on_png_warning(png_structp, png_const_charp) {}

void on_png_read(png_structp png, png_bytep out, size_t n) {
  auto* job = static_cast<PngJob*>(png_get_io_ptr(png));
  if (job->size - job->pos < n) png_error(png, "unexpected end of file (truncated)");
  std::memcpy(out, job->data + job->pos, n);
  job->pos += n;
}

int channels_of(int color_type) {
  switch (color_type) {
    case PNG_COLOR_TYPE_GRAY: return 1;
    case PNG_COLOR_TYPE_GRAY_ALPHA: return 2;
    case PNG_COLOR_TYPE_RGB: return 3;
    case PNG_COLOR_TYPE_RGB_ALPHA: return 4;
    case PNG_COLOR_TYPE_PALETTE: return 1;
  }
  return 0;
}

// One raw row (8-bit samples, or 16-bit big-endian ones) to RGB; see the file comment.
void convert_row(const PngJob& job, const uint8_t* in, uint8_t* out) {
  const size_t w = job.width;
  const bool wide = job.bit_depth == 16;
  switch (job.color_type) {
    case PNG_COLOR_TYPE_GRAY: {
      if (wide) {
        for (size_t x = 0; x < w; ++x) {
          const uint8_t v = in[2 * x] != 0 ? 255 : in[2 * x + 1];
          out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = v;
        }
      } else {
        const int scale = job.bit_depth == 1 ? 255 : job.bit_depth == 2 ? 85 : job.bit_depth == 4 ? 17 : 1;
        for (size_t x = 0; x < w; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = uint8_t(in[x] * scale);
      }
      return;
    }
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
      const size_t step = wide ? 4 : 2;  // the gray sample's (high) byte comes first
      for (size_t x = 0; x < w; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[step * x];
      return;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
      const size_t channels = job.color_type == PNG_COLOR_TYPE_RGB ? 3 : 4;
      const size_t sample = wide ? 2 : 1;
      if (channels == 3 && sample == 1) {
        std::memcpy(out, in, w * 3);
        return;
      }
      for (size_t x = 0; x < w; ++x)
        for (size_t c = 0; c < 3; ++c) out[3 * x + c] = in[(x * channels + c) * sample];
      return;
    }
    case PNG_COLOR_TYPE_PALETTE:
      for (size_t x = 0; x < w; ++x) std::memcpy(out + 3 * x, job.palette + 3 * size_t(in[x]), 3);
      return;
  }
}

// --- the two frames libpng may longjmp into (plain C: no destructors) ----------------------

bool read_header(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  png_read_info(job->png, job->info);
  png_get_IHDR(job->png, job->info, &job->width, &job->height, &job->bit_depth, &job->color_type, &job->interlace,
               nullptr, nullptr);
  return true;
}

bool read_pixels(PngJob* job) {
  if (setjmp(png_jmpbuf(job->png))) return false;
  if (job->bit_depth < 8) png_set_packing(job->png);  // one byte per sample, values unscaled
  const int passes = png_set_interlace_handling(job->png);
  png_read_update_info(job->png, job->info);
  if (png_get_rowbytes(job->png, job->info) != job->raw_row_bytes) png_error(job->png, "unexpected row size");
  const size_t rgb_row = size_t(job->width) * 3;
  if (passes > 1) {
    png_read_image(job->png, job->raw_rows);
    for (png_uint_32 y = 0; y < job->height; ++y) convert_row(*job, job->raw_rows[y], job->rgb + y * rgb_row);
  } else {
    for (png_uint_32 y = 0; y < job->height; ++y) {
      png_read_row(job->png, job->raw, nullptr);
      convert_row(*job, job->raw, job->rgb + y * rgb_row);
    }
  }
  return true;
}

// Owns libpng's structs on the C++ side of the frames above.
struct PngStructs {
  PngJob* job;
  ~PngStructs() { png_destroy_read_struct(&job->png, job->info ? &job->info : nullptr, nullptr); }
};

}  // namespace

RgbImage decode_png(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source) {
  PngJob job;
  job.data = bytes.data();
  job.size = bytes.size();
  job.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_png_error, on_png_warning);
  if (!job.png) fail("{}: cannot initialise libpng", source);
  PngStructs guard{&job};
  job.info = png_create_info_struct(job.png);
  if (!job.info) fail("{}: cannot initialise libpng", source);
  png_set_read_fn(job.png, &job, on_png_read);

  if (!read_header(&job)) fail("{}: corrupt or truncated PNG: {}", source, job.message);
  check_image_size(job.width, job.height, limits, source, "PNG");
  const int channels = channels_of(job.color_type);
  if (channels == 0) fail("{}: PNG color type {} is not valid", source, job.color_type);

  if (job.color_type == PNG_COLOR_TYPE_PALETTE) {
    for (int i = 0; i < 256; ++i) job.palette[3 * i] = job.palette[3 * i + 1] = job.palette[3 * i + 2] = uint8_t(i);
    png_colorp plte = nullptr;
    int n = 0;
    if (png_get_PLTE(job.png, job.info, &plte, &n) == 0) fail("{}: palette PNG without a PLTE chunk", source);
    for (int i = 0; i < n && i < 256; ++i) {
      job.palette[3 * i] = plte[i].red;
      job.palette[3 * i + 1] = plte[i].green;
      job.palette[3 * i + 2] = plte[i].blue;
    }
  }

  job.raw_row_bytes = size_t(job.width) * size_t(channels) * (job.bit_depth == 16 ? 2 : 1);
  RgbImage image = RgbImage::allocate(job.width, job.height);
  job.rgb = image.pixels.data();
  std::vector<uint8_t> raw;
  std::vector<png_bytep> raw_rows;
  if (job.interlace != PNG_INTERLACE_NONE) {
    // Adam7 passes fill rows in place, so the whole raw image is needed at once.
    raw.resize(job.raw_row_bytes * job.height);
    raw_rows.resize(job.height);
    for (png_uint_32 y = 0; y < job.height; ++y) raw_rows[y] = raw.data() + y * job.raw_row_bytes;
    job.raw_rows = raw_rows.data();
  } else {
    raw.resize(job.raw_row_bytes);
  }
  job.raw = raw.data();
  if (!read_pixels(&job)) fail("{}: corrupt or truncated PNG ({} x {}): {}", source, job.width, job.height, job.message);
  return image;
}

}  // namespace unicorn::vision::detail
