// Image file decoding to RGB, matching what Pillow gives for Image.open(f).convert("RGB"):
// grayscale is replicated to three channels, palettes are expanded, alpha is dropped (not
// composited onto a background), 16-bit PNG samples are reduced the way Pillow reduces them.
// The format is told by the file's first bytes, never by its name.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "vision/image.h"

namespace unicorn::vision {

struct DecodeLimits {
  // Largest width x height accepted, checked from the header before any pixel memory is
  // allocated. 100 million pixels is 300 MB of RGB: far beyond what a 896x896 model input
  // needs, and below Pillow's own decompression-bomb error threshold (2 x 89.5 MP = 179 MP).
  int64_t max_pixels = 100'000'000;
};

enum class ImageFormat { Png, Jpeg, Webp, Unknown };

// Detects PNG, JPEG or WebP from the signature at the start of `bytes`.
ImageFormat detect_image_format(std::span<const uint8_t> bytes);
std::string_view image_format_name(ImageFormat format);

// Decodes a whole PNG, JPEG or WebP file held in memory. `source` names it in error messages
// (a path, "request image 2", ...). Throws Error for an unknown format, an image over the
// limits, or a corrupt or truncated file.
RgbImage decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits = {},
                      std::string_view source = "image");
// Reads and decodes a file; errors name the path.
RgbImage decode_image_file(const std::string& path, const DecodeLimits& limits = {});

}  // namespace unicorn::vision
