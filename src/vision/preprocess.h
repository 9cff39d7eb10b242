// Gemma 3 image preprocessing, as transformers' Gemma3ImageProcessorPil does it: decode and
// convert to RGB (decode.h), optionally pan-and-scan (pan_and_scan.h), resize every image to
// image_size x image_size with Pillow's bilinear filter (resize_pillow.h), rescale by 1/255 and
// normalize with mean 0.5 and std 0.5, channels first.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "core/tensor.h"
#include "vision/decode.h"
#include "vision/image.h"
#include "vision/pan_and_scan.h"

namespace unicorn::vision {

struct PreprocessOptions {
  int64_t image_size = 896;  // the vision tower's input side: VisionConfig::image_size
  bool pan_and_scan = false;  // transformers' do_pan_and_scan (off by default)
  PanAndScanOptions pan_and_scan_options;
  DecodeLimits limits;
  // Where the pixel values go (Engine::pixel_buffer: page-locked memory for a GPU to copy
  // from); zero-filled host memory when empty.
  std::function<Tensor(DType, Shape)> alloc;
};

struct PreprocessedImage {
  Tensor pixel_values;    // f32 [1 + num_crops, 3, image_size, image_size]: the whole image first
  int64_t num_crops = 0;  // pan-and-scan crops after it (0 when off or not triggered)
};

// From the bytes of a PNG, JPEG or WebP file; `source` names it in errors.
PreprocessedImage preprocess_image(std::span<const uint8_t> file_bytes, const PreprocessOptions& options,
                                   std::string_view source = "image");
// From an already decoded image.
PreprocessedImage preprocess_image(const RgbImage& image, const PreprocessOptions& options);

// The model input value of an 8-bit sample: float32((float32(k * (1/255 in float64)) - 0.5) / 0.5),
// the operations and precisions of transformers' rescale and normalize.
float gemma3_pixel_value(uint8_t k);

// Writes `image` channels-first ([3, height, width]) as model input values.
void write_planar_pixel_values(const RgbImage& image, float* out);

}  // namespace unicorn::vision
