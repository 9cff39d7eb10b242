// Gemma 3's pan-and-scan: an image much wider than tall (or taller than wide) is also cut into
// 2..max_crops side-by-side (or stacked) crops, each then resized like the whole image, so the
// model sees detail that one square resize would squeeze out.
// ref: transformers image_processing_pil_gemma3.py Gemma3ImageProcessorPil.pan_and_scan.
#pragma once

#include <cstdint>
#include <vector>

#include "vision/image.h"

namespace unicorn::vision {

// Defaults are what Gemma 3's processors are configured with (preprocessor_config.json of the
// released checkpoints; transformers leaves them None and requires them when enabled).
struct PanAndScanOptions {
  int64_t min_crop_size = 256;    // pan_and_scan_min_crop_size: no crop side below this
  int64_t max_crops = 4;          // pan_and_scan_max_num_crops
  double min_ratio_to_activate = 1.2;  // pan_and_scan_min_ratio_to_activate: long / short side
};

struct CropRect {
  int64_t x = 0, y = 0, width = 0, height = 0;
  bool operator==(const CropRect&) const = default;
};

// The crops of a width x height image, left to right (or top to bottom); empty when the
// image is not elongated enough or the crops would be smaller than min_crop_size. The last
// crop is narrower when the size does not divide evenly, as numpy slicing makes it.
std::vector<CropRect> pan_and_scan_crops(int64_t width, int64_t height, const PanAndScanOptions& options);

}  // namespace unicorn::vision
