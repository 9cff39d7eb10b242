#include "vision/decode.h"

#include <cstring>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "vision/codecs.h"

namespace unicorn::vision {

namespace {

bool starts_with(std::span<const uint8_t> bytes, std::string_view magic, size_t at = 0) {
  return bytes.size() >= at + magic.size() && std::memcmp(bytes.data() + at, magic.data(), magic.size()) == 0;
}

// Formats Pillow would open but this engine does not decode, named so the error says what the
// file is instead of only what it is not.
std::string_view other_format_name(std::span<const uint8_t> bytes) {
  if (starts_with(bytes, "GIF87a") || starts_with(bytes, "GIF89a")) return "GIF";
  if (starts_with(bytes, "BM")) return "BMP";
  if (starts_with(bytes, std::string_view("II*\0", 4)) || starts_with(bytes, std::string_view("MM\0*", 4))) return "TIFF";
  if (starts_with(bytes, "ftyp", 4)) return "HEIF/AVIF";
  return {};
}

std::string first_bytes_hex(std::span<const uint8_t> bytes) {
  std::string s;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) s += fmt::format("{}{:02x}", i ? " " : "", bytes[i]);
  return s;
}

}  // namespace

ImageFormat detect_image_format(std::span<const uint8_t> bytes) {
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n")) return ImageFormat::Png;
  if (starts_with(bytes, "\xff\xd8\xff")) return ImageFormat::Jpeg;
  if (starts_with(bytes, "RIFF") && starts_with(bytes, "WEBP", 8)) return ImageFormat::Webp;
  return ImageFormat::Unknown;
}

std::string_view image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Webp: return "WebP";
    case ImageFormat::Unknown: break;
  }
  return "unknown";
}

RgbImage decode_image(std::span<const uint8_t> bytes, const DecodeLimits& limits, std::string_view source) {
  if (limits.max_pixels <= 0) fail("{}: DecodeLimits.max_pixels must be positive, got {}", source, limits.max_pixels);
  switch (detect_image_format(bytes)) {
    case ImageFormat::Png: return detail::decode_png(bytes, limits, source);
    case ImageFormat::Jpeg: return detail::decode_jpeg(bytes, limits, source);
    case ImageFormat::Webp: return detail::decode_webp(bytes, limits, source);
    case ImageFormat::Unknown: break;
  }
  if (bytes.empty()) fail("{}: empty file; a PNG, JPEG or WebP image was expected", source);
  const std::string_view other = other_format_name(bytes);
  if (!other.empty()) fail("{}: {} images are not supported; PNG, JPEG or WebP expected", source, other);
  fail("{}: not an image this engine reads (first bytes {}); PNG, JPEG or WebP expected", source,
       first_bytes_hex(bytes));
}

RgbImage decode_image_file(const std::string& path, const DecodeLimits& limits) {
  const auto file = MappedFile::open(path);
  return decode_image(file->bytes(), limits, path);
}

namespace detail {

void check_image_size(int64_t width, int64_t height, const DecodeLimits& limits, std::string_view source,
                      std::string_view format) {
  if (width <= 0 || height <= 0) fail("{}: {} header declares an empty image ({} x {})", source, format, width, height);
  // Compared without multiplying first: width * height of two 32-bit sizes fits int64, but
  // the division keeps this safe for any caller.
  if (width > limits.max_pixels / height)
    fail("{}: {} image of {} x {} pixels is over the limit of {} pixels (DecodeLimits.max_pixels)", source, format,
         width, height, limits.max_pixels);
}

}  // namespace detail

}  // namespace unicorn::vision
