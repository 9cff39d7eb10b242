// The Gemma 3 image-preprocessing references kept in tests/data/images/ (written once from
// shared/reference by tests/vision/reference_converter_test.cpp): the source files, what
// Pillow decoded, and what Gemma3ImageProcessorPil produced, listed in expected.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace unicorn::test {

struct ImageReferenceCase {
  std::string name;     // "astronaut_png", "chelsea_wide_png.pas1", ...
  std::string file;     // source image, relative to tests/data/images/
  // A PNG whose pixels (gray ones replicated) are Pillow's Image.open(file).convert("RGB");
  // empty if not stored. May be `file` itself when that holds exactly those pixels.
  std::string decoded;
  bool pan_and_scan = false;
  int64_t num_crops = 0;
  // Gray [S, S] PNGs, three per output image (the whole image, then the crops) in R, G, B
  // order: the processor's values as k = (value + 1) * 127.5.
  std::vector<std::string> pixel_values_k;
};

struct ImageReference {
  int64_t image_size = 0;  // S
  std::vector<ImageReferenceCase> cases;
};

ImageReference load_image_reference();
// tests/data/images/<rel>
std::string image_data_path(const std::string& rel);
// Pillow's decoded RGB of a case, [H, W, 3], with its width and height.
struct ExpectedRgb {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;
};
ExpectedRgb expected_decoded(const ImageReferenceCase& c);
// The expected k values of a case, [1 + num_crops, 3, S, S].
std::vector<uint8_t> expected_pixel_k(const ImageReference& reference, const ImageReferenceCase& c);

}  // namespace unicorn::test
