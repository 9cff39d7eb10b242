#include "vision/pan_and_scan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace unicorn::vision {

std::vector<CropRect> pan_and_scan_crops(int64_t width, int64_t height, const PanAndScanOptions& options) {
  if (width < 1 || height < 1) fail("pan-and-scan of a {}x{} image: sizes must be at least 1", width, height);
  if (options.min_crop_size < 1) fail("pan-and-scan: min_crop_size must be at least 1, got {}", options.min_crop_size);
  if (options.max_crops < 1) fail("pan-and-scan: max_crops must be at least 1, got {}", options.max_crops);

  // The long side is cut into n crops: n is the aspect ratio rounded half up, no more than
  // fit at min_crop_size, then clamped to [2, max_crops]. Python's true division and
  // math.floor / math.ceil, in double.
  const bool landscape = width >= height;
  const int64_t long_side = landscape ? width : height;
  const int64_t short_side = landscape ? height : width;
  if (double(long_side) / double(short_side) < options.min_ratio_to_activate) return {};
  int64_t n = int64_t(std::floor(double(long_side) / double(short_side) + 0.5));
  n = std::min(int64_t(std::floor(double(long_side) / double(options.min_crop_size))), n);
  n = std::max<int64_t>(2, n);
  n = std::min(options.max_crops, n);

  const int64_t crop_long = int64_t(std::ceil(double(long_side) / double(n)));
  const int64_t crop_short = short_side;  // ceil(short / 1)
  if (std::min(crop_long, crop_short) < options.min_crop_size) return {};

  std::vector<CropRect> crops;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t begin = i * crop_long;
    const int64_t size = std::min(crop_long, long_side - begin);  // numpy clips the slice
    if (size <= 0)
      fail("pan-and-scan of a {}x{} image: crop {} of {} is empty (min_crop_size {} too small for the image)", width,
           height, i + 1, n, options.min_crop_size);
    crops.push_back(landscape ? CropRect{begin, 0, size, height} : CropRect{0, begin, width, size});
  }
  return crops;
}

}  // namespace unicorn::vision
