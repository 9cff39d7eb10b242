#include "vision/preprocess.h"

#include <array>

#include "core/error.h"
#include "vision/resize_pillow.h"

namespace unicorn::vision {

float gemma3_pixel_value(uint8_t k) {
  // ref: transformers image_transforms.rescale (image.astype(float64) * scale, then float32)
  // and normalize (float32 (x - mean) / std), with rescale_factor 1/255, mean = std = 0.5.
  const float rescaled = float(double(k) * (1.0 / 255.0));
  return (rescaled - 0.5f) / 0.5f;
}

void write_planar_pixel_values(const RgbImage& image, float* out) {
  std::array<float, 256> table;
  for (int k = 0; k < 256; ++k) table[size_t(k)] = gemma3_pixel_value(uint8_t(k));
  const int64_t plane = image.width * image.height;
  const uint8_t* p = image.pixels.data();
  for (int64_t i = 0; i < plane; ++i, p += 3) {
    out[i] = table[p[0]];
    out[plane + i] = table[p[1]];
    out[2 * plane + i] = table[p[2]];
  }
}

PreprocessedImage preprocess_image(const RgbImage& image, const PreprocessOptions& options) {
  const int64_t s = options.image_size;
  if (s < 1) fail("preprocess: image_size must be at least 1, got {}", s);
  if (image.empty()) fail("preprocess: the image is empty ({}x{})", image.width, image.height);

  std::vector<CropRect> crops;
  if (options.pan_and_scan) crops = pan_and_scan_crops(image.width, image.height, options.pan_and_scan_options);

  PreprocessedImage result;
  result.num_crops = int64_t(crops.size());
  const Shape shape{1 + result.num_crops, 3, s, s};
  result.pixel_values = options.alloc ? options.alloc(DType::F32, shape) : Tensor::zeros(DType::F32, shape);
  if (result.pixel_values.dtype() != DType::F32 || result.pixel_values.shape() != shape)
    fail("preprocess: the pixel buffer is {} {}, expected f32 {}", dtype_name(result.pixel_values.dtype()),
         shape_str(result.pixel_values.shape()), shape_str(shape));
  float* out = result.pixel_values.data<float>();
  const int64_t per_image = 3 * s * s;
  // ref: Gemma3ImageProcessorPil._preprocess: [image] + crops, each resized on its own.
  write_planar_pixel_values(resize_bilinear_pillow(image, s, s), out);
  for (size_t i = 0; i < crops.size(); ++i) {
    const CropRect& c = crops[i];
    const RgbImage piece = crop(image, c.x, c.y, c.width, c.height);
    write_planar_pixel_values(resize_bilinear_pillow(piece, s, s), out + int64_t(i + 1) * per_image);
  }
  return result;
}

PreprocessedImage preprocess_image(std::span<const uint8_t> file_bytes, const PreprocessOptions& options,
                                   std::string_view source) {
  return preprocess_image(decode_image(file_bytes, options.limits, source), options);
}

}  // namespace unicorn::vision
