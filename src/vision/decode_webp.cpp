// WebP through libwebp. Pillow opens a still WebP with WebPAnimDecoder in non-premultiplied
// RGBA (ref: Pillow _webp.c _anim_decoder_new); its first frame is decoded straight onto a
// cleared canvas with libwebp's default options (fancy upsampling), and convert("RGB") then
// drops alpha. Decoding with the same defaults to MODE_RGB gives the same RGB values.
// Animated files need libwebpdemux's compositing and are refused.
#include <webp/decode.h>

#include "core/error.h"
#include "vision/codecs.h"

namespace unicorn::vision::detail {

namespace {

std::string_view status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_OK: return "ok";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    case VP8_STATUS_INVALID_PARAM: return "invalid parameter";
    case VP8_STATUS_BITSTREAM_ERROR: return "bitstream error";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_SUSPENDED: return "suspended";
    case VP8_STATUS_USER_ABORT: return "aborted";
    case VP8_STATUS_NOT_ENOUGH_DATA: return "not enough data (truncated)";
  }
  return "unknown error";
}

}  // namespace

RgbImage decode_webp(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source) {
  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(bytes.data(), bytes.size(), &features);
  if (status != VP8_STATUS_OK) fail("{}: corrupt or truncated WebP: {}", source, status_text(status));
  if (features.has_animation) fail("{}: animated WebP is not supported; a still image expected", source);
  check_image_size(features.width, features.height, limits, source, "WebP");

  RgbImage image = RgbImage::allocate(features.width, features.height);
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) fail("{}: libwebp version mismatch", source);
  config.output.colorspace = MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = image.pixels.data();
  config.output.u.RGBA.stride = int(image.row_bytes());
  config.output.u.RGBA.size = image.pixels.size();
  status = WebPDecode(bytes.data(), bytes.size(), &config);
  WebPFreeDecBuffer(&config.output);  // frees nothing of ours (external memory), only internal state
  if (status != VP8_STATUS_OK)
    fail("{}: corrupt or truncated WebP ({} x {}): {}", source, features.width, features.height, status_text(status));
  return image;
}

}  // namespace unicorn::vision::detail
