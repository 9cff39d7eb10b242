// JPEG through libjpeg(-turbo) with the settings Pillow decodes with (ref: Pillow
// JpegImagePlugin.py, decode/JpegDecode.c): libjpeg's defaults, i.e. the accurate integer
// IDCT (JDCT_ISLOW) and fancy upsampling of subsampled chroma; output in RGB for 3-component
// files, GRAYSCALE (then replicated, Pillow's "L" -> "RGB") for 1-component files, and CMYK
// for 4-component files, which Pillow always reads as Adobe-inverted ("CMYK;I") and converts
// with cmyk2rgb (ref: Pillow Convert.c).
// Errors: libjpeg's error_exit must not return, so ours longjmps back into one of the C-style
// functions below, whose frames hold nothing with a destructor.
// A file that ends early is an error (Pillow: "image file is truncated"), not a gray-filled
// image, even when only the end-of-image marker is missing: libjpeg reads past the last
// entropy-coded byte looking for it, where Pillow's loader reports the truncation. Other
// libjpeg warnings ("corrupt JPEG data: extraneous bytes") are ignored, as Pillow ignores them.
#include <cstddef>
#include <cstdio>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>

#include <csetjmp>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "vision/codecs.h"

namespace unicorn::vision::detail {

namespace {

// Progressive files can hold any number of scans, each one a pass over the whole image; a
// crafted file with thousands of tiny scans makes decoding take minutes. No real encoder
// writes more than a few dozen (libjpeg-turbo's tjDecompress uses the same guard).
constexpr int kMaxScans = 1000;

// All state that libjpeg's callbacks and the setjmp frames touch: plain data only.
struct JpegJob {
  jpeg_decompress_struct cinfo;
  jpeg_error_mgr error;
  jpeg_progress_mgr progress;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64] = {};

  uint8_t* rgb = nullptr;       // [height, width, 3]
  uint8_t* scratch = nullptr;   // one row of width * components samples (gray, CMYK)
};

JpegJob* job_of(j_common_ptr cinfo) {
  // cinfo is the first member of JpegJob, so the struct starts where cinfo does.
  return reinterpret_cast<JpegJob*>(cinfo);
}

void on_jpeg_error(j_common_ptr cinfo) {
  JpegJob* job = job_of(cinfo);
  (*cinfo->err->format_message)(cinfo, job->message);
  std::longjmp(job->jump, 1);
}

void on_jpeg_message(j_common_ptr cinfo, int level) {
  // level -1 is a warning; only running out of data is fatal (see the file comment).
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    JpegJob* job = job_of(cinfo);
    std::snprintf(job->message, sizeof job->message, "file is truncated (the data ends before the image does)");
    std::longjmp(job->jump, 1);
  }
}

void on_jpeg_output(j_common_ptr) {}  // never print to stderr from the library

void on_jpeg_progress(j_common_ptr cinfo) {
  auto* d = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (d->input_scan_number > kMaxScans) {
    JpegJob* job = job_of(cinfo);
    std::snprintf(job->message, sizeof job->message, "more than %d progressive scans", kMaxScans);
    std::longjmp(job->jump, 1);
  }
}

// ref: Pillow Convert.c cmyk2rgb with MULDIV255; inputs already un-inverted from "CMYK;I".
inline uint8_t cmyk_channel(int c, int nk) {
  const int t = c * nk + 128;
  const int v = nk - (((t >> 8) + t) >> 8);
  return uint8_t(v < 0 ? 0 : v > 255 ? 255 : v);
}

void convert_row(const JpegJob& job, uint8_t* out) {
  const size_t w = job.cinfo.output_width;
  const uint8_t* in = job.scratch;
  if (job.cinfo.out_color_space == JCS_GRAYSCALE) {
    for (size_t x = 0; x < w; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x];
  } else {  // JCS_CMYK
    for (size_t x = 0; x < w; ++x, in += 4) {
      // Pillow's "CMYK;I" inverts every stored sample: c = 255 - stored, and nk = 255 - k.
      const int nk = in[3];
      for (int c = 0; c < 3; ++c) out[3 * x + size_t(c)] = cmyk_channel(255 - in[c], nk);
    }
  }
}

// --- the frames libjpeg may longjmp into (plain C: no destructors) -------------------------

bool create_decompressor(JpegJob* job) {
  if (setjmp(job->jump)) return false;
  jpeg_create_decompress(&job->cinfo);
  return true;
}

bool read_header(JpegJob* job, const uint8_t* data, size_t size) {
  if (setjmp(job->jump)) return false;
  jpeg_mem_src(&job->cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&job->cinfo, TRUE);
  return true;
}

bool read_pixels(JpegJob* job) {
  if (setjmp(job->jump)) return false;
  jpeg_start_decompress(&job->cinfo);
  const size_t row_bytes = size_t(job->cinfo.output_width) * 3;
  while (job->cinfo.output_scanline < job->cinfo.output_height) {
    const size_t y = job->cinfo.output_scanline;
    if (job->cinfo.out_color_space == JCS_RGB) {
      JSAMPROW row = job->rgb + y * row_bytes;
      jpeg_read_scanlines(&job->cinfo, &row, 1);
    } else {
      JSAMPROW row = job->scratch;
      jpeg_read_scanlines(&job->cinfo, &row, 1);
      convert_row(*job, job->rgb + y * row_bytes);
    }
  }
  jpeg_finish_decompress(&job->cinfo);
  return true;
}

struct JpegStructs {
  JpegJob* job;
  ~JpegStructs() { jpeg_destroy_decompress(&job->cinfo); }
};

}  // namespace

RgbImage decode_jpeg(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source) {
  static_assert(offsetof(JpegJob, cinfo) == 0, "job_of relies on cinfo being the first member");
  JpegJob job;
  std::memset(static_cast<void*>(&job.cinfo), 0, sizeof job.cinfo);
  job.cinfo.err = jpeg_std_error(&job.error);
  job.error.error_exit = on_jpeg_error;
  job.error.emit_message = on_jpeg_message;
  job.error.output_message = on_jpeg_output;
  job.progress.progress_monitor = on_jpeg_progress;
  if (!create_decompressor(&job)) fail("{}: cannot initialise libjpeg: {}", source, job.message);
  JpegStructs guard{&job};
  job.cinfo.progress = &job.progress;

  if (!read_header(&job, bytes.data(), bytes.size())) fail("{}: corrupt or truncated JPEG: {}", source, job.message);
  const int64_t width = job.cinfo.image_width, height = job.cinfo.image_height;
  check_image_size(width, height, limits, source, "JPEG");
  switch (job.cinfo.num_components) {
    case 1: job.cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: job.cinfo.out_color_space = JCS_RGB; break;
    case 4: job.cinfo.out_color_space = JCS_CMYK; break;
    default: fail("{}: JPEG with {} color components; 1, 3 or 4 expected", source, job.cinfo.num_components);
  }
  // Pillow keeps libjpeg's defaults; set them explicitly so a build with other defaults
  // cannot drift from the reference.
  job.cinfo.dct_method = JDCT_ISLOW;
  job.cinfo.do_fancy_upsampling = TRUE;
  job.cinfo.scale_num = job.cinfo.scale_denom = 1;

  RgbImage image = RgbImage::allocate(width, height);
  job.rgb = image.pixels.data();
  std::vector<uint8_t> scratch(size_t(width) * size_t(job.cinfo.num_components));
  job.scratch = scratch.data();
  if (!read_pixels(&job))
    fail("{}: corrupt or truncated JPEG ({} x {}): {}", source, width, height, job.message);
  return image;
}

}  // namespace unicorn::vision::detail
