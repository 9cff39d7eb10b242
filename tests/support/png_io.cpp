#include "support/png_io.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>

#include <stdexcept>
#include <string>

namespace unicorn::test {

PngPixels read_png(const std::string& path) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str()))
    throw std::runtime_error(path + ": " + image.message);
  PngPixels out;
  out.channels = (image.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  image.format = out.channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
  out.width = image.width;
  out.height = image.height;
  out.data.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, out.data.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw std::runtime_error(path + ": " + message);
  }
  return out;
}

namespace {

// libpng's full write API, for the strongest compression (the simplified one picks a faster
// zlib level); it reports errors by longjmp, so this frame holds nothing with a destructor.
bool write_png_c(std::FILE* file, const PngPixels* pixels, png_bytep* rows) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, file);
  png_set_compression_level(png, 9);
  png_set_filter(png, 0, PNG_ALL_FILTERS);
  png_set_IHDR(png, info, png_uint_32(pixels->width), png_uint_32(pixels->height), 8,
               pixels->channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

void append_to_string(png_structp png, png_bytep data, size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}
void flush_nothing(png_structp) {}

bool encode_png_c(const RawPng* raw, png_bytep* rows, std::string* out) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, out, append_to_string, flush_nothing);
  png_set_IHDR(png, info, png_uint_32(raw->width), png_uint_32(raw->height), raw->bit_depth, raw->color_type,
               raw->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!raw->palette.empty())
    png_set_PLTE(png, info, reinterpret_cast<png_const_colorp>(raw->palette.data()), int(raw->palette.size() / 3));
  if (!raw->trns.empty()) {
    if (raw->color_type == PNG_COLOR_TYPE_PALETTE) {
      png_set_tRNS(png, info, raw->trns.data(), int(raw->trns.size()), nullptr);
    } else {
      png_color_16 key{};
      key.gray = key.red = png_uint_16(raw->trns[0] << 8 | raw->trns[1]);
      if (raw->trns.size() >= 6) {
        key.green = png_uint_16(raw->trns[2] << 8 | raw->trns[3]);
        key.blue = png_uint_16(raw->trns[4] << 8 | raw->trns[5]);
      }
      png_set_tRNS(png, info, nullptr, 0, &key);
    }
  }
  png_write_info(png, info);
  if (raw->interlaced) png_set_interlace_handling(png);
  png_write_image(png, rows);
  png_write_end(png, info);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

RawPng raw_png(int64_t width, int64_t height, int bit_depth, int color_type, std::vector<uint8_t> rows) {
  RawPng png;
  png.width = width;
  png.height = height;
  png.bit_depth = bit_depth;
  png.color_type = color_type;
  png.rows = std::move(rows);
  return png;
}

std::string encode_png(const RawPng& raw) {
  const int channels[] = {1, 0, 3, 1, 2, 0, 4};
  if (raw.color_type < 0 || raw.color_type > 6 || channels[raw.color_type] == 0)
    throw std::runtime_error("encode_png: bad color type");
  const size_t row_bytes = (size_t(raw.width) * size_t(channels[raw.color_type]) * size_t(raw.bit_depth) + 7) / 8;
  if (raw.rows.size() != row_bytes * size_t(raw.height)) throw std::runtime_error("encode_png: rows do not match the size");
  std::vector<png_bytep> rows(size_t(raw.height));
  for (size_t y = 0; y < rows.size(); ++y) rows[y] = const_cast<png_bytep>(raw.rows.data() + y * row_bytes);
  std::string out;
  if (!encode_png_c(&raw, rows.data(), &out)) throw std::runtime_error("encode_png: libpng failed");
  return out;
}

void write_png(const std::string& path, const PngPixels& pixels) {
  if (pixels.channels != 1 && pixels.channels != 3) throw std::runtime_error(path + ": 1 or 3 channels expected");
  if (int64_t(pixels.data.size()) != pixels.width * pixels.height * pixels.channels)
    throw std::runtime_error(path + ": pixel data does not match the size");
  std::vector<png_bytep> rows(size_t(pixels.height));
  for (int64_t y = 0; y < pixels.height; ++y)
    rows[size_t(y)] = const_cast<png_bytep>(pixels.data.data() + y * pixels.width * pixels.channels);
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw std::runtime_error("cannot write " + path);
  const bool ok = write_png_c(file, &pixels, rows.data());
  const bool closed = std::fclose(file) == 0;
  if (!ok || !closed) throw std::runtime_error("failed writing " + path);
}

std::vector<uint8_t> expand_to_rgb(const PngPixels& image) {
  if (image.channels == 3) return image.data;
  std::vector<uint8_t> rgb;
  rgb.reserve(image.data.size() * 3);
  for (uint8_t v : image.data) rgb.insert(rgb.end(), {v, v, v});
  return rgb;
}

}  // namespace unicorn::test
