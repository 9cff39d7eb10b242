#include "vision/image.h"

#include <cstring>

#include "core/error.h"

namespace unicorn::vision {

RgbImage RgbImage::allocate(int64_t width, int64_t height) {
  if (width < 0 || height < 0) fail("image size {}x{}: sizes must not be negative", width, height);
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.assign(size_t(width * height * 3), 0);
  return image;
}

RgbImage crop(const RgbImage& image, int64_t x, int64_t y, int64_t width, int64_t height) {
  if (x < 0 || y < 0 || width < 0 || height < 0 || x + width > image.width || y + height > image.height)
    fail("crop {}x{} at ({}, {}) does not fit in a {}x{} image", width, height, x, y, image.width, image.height);
  RgbImage out = RgbImage::allocate(width, height);
  for (int64_t r = 0; r < height; ++r)
    std::memcpy(out.row(r), image.pixel(x, y + r), size_t(width * 3));
  return out;
}

}  // namespace unicorn::vision
