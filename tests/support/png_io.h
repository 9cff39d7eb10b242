// 8-bit gray and RGB PNG files for test data, through libpng's simplified API: a reader
// independent of src/vision's decoder, so the reference arrays stored as PNG do not pass
// through the code they test.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unicorn::test {

struct PngPixels {
  int64_t width = 0;
  int64_t height = 0;
  int channels = 0;           // 1 (gray) or 3 (RGB)
  std::vector<uint8_t> data;  // [height, width, channels]
};

// Reads a PNG as 8-bit gray (if the file has no color) or RGB; throws std::runtime_error.
PngPixels read_png(const std::string& path);
// Writes 8-bit gray or RGB, losslessly, at zlib's strongest level; throws std::runtime_error.
void write_png(const std::string& path, const PngPixels& image);

// Any PNG libpng can write, for decoder tests: `rows` holds height rows of packed samples as
// the PNG format lays them out (16-bit samples big-endian, 1/2/4-bit ones packed MSB first);
// `palette` is RGB triplets for color type 3; `trns` is written as a tRNS chunk if not empty
// (palette alpha values, or one 16-bit gray / RGB key). Throws std::runtime_error.
struct RawPng {
  int64_t width = 0, height = 0;
  int bit_depth = 8;
  int color_type = 2;  // PNG_COLOR_TYPE_*
  bool interlaced = false;
  std::vector<uint8_t> rows;
  std::vector<uint8_t> palette;
  std::vector<uint8_t> trns;
};
RawPng raw_png(int64_t width, int64_t height, int bit_depth, int color_type, std::vector<uint8_t> rows);
std::string encode_png(const RawPng& png);

// RGB pixels [height, width, 3] of a gray (replicated) or RGB image.
std::vector<uint8_t> expand_to_rgb(const PngPixels& image);

}  // namespace unicorn::test
