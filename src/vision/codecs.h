// The per-format decoders behind decode_image (decode.h). Each one checks the declared size
// against the limits before allocating pixels and turns every library failure into an Error
// naming `source`; none of them lets a C library longjmp across a C++ frame.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "vision/decode.h"
#include "vision/image.h"

namespace unicorn::vision::detail {

RgbImage decode_png(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source);
RgbImage decode_jpeg(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source);
RgbImage decode_webp(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source);

// Throws Error unless a width x height image (as the header of a `format` file declares it)
// is within the limits.
void check_image_size(int64_t width, int64_t height, const DecodeLimits& limits, std::string_view source,
                      std::string_view format);

}  // namespace unicorn::vision::detail
