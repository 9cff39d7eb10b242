// Bad input to the image decoders: every one must end in a clear unicorn::Error, never a
// crash, a longjmp leak (run these under the ASan build), a hang, or a huge allocation.
#include <gtest/gtest.h>
#include <webp/encode.h>
#include <zlib.h>

#include <chrono>
#include <random>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "support/png_io.h"
#include "support/test_paths.h"
#include "vision/decode.h"

namespace unicorn::vision {
namespace {

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Expects decoding to throw Error with every one of `parts` in its message; returns it.
std::string expect_error(const std::string& bytes, std::initializer_list<std::string> parts,
                         const DecodeLimits& limits = {}) {
  try {
    decode_image(as_bytes(bytes), limits, "test-input");
    ADD_FAILURE() << "expected an error for " << bytes.size() << " bytes";
    return {};
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("test-input"), std::string::npos) << "the message must name the source: " << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
    return msg;
  }
}

std::string small_webp() {
  const int w = 40, h = 30;
  std::vector<uint8_t> rgb(size_t(w * h * 3));
  std::mt19937 rng(3);
  for (auto& v : rgb) v = uint8_t(rng() % 64);  // compressible, so the file is small
  uint8_t* out = nullptr;
  const size_t size = WebPEncodeRGB(rgb.data(), w, h, w * 3, 80.0f, &out);
  std::string bytes(reinterpret_cast<const char*>(out), size);
  WebPFree(out);
  return bytes;
}

std::string be32(uint32_t v) {
  return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
}

TEST(DecodeErrors, EmptyFile) {
  expect_error("", {"empty", "PNG, JPEG or WebP"});
  const std::string path = test::scratch_dir("decode-empty") + "/empty.png";
  test::write_bytes(path, "");
  try {
    decode_image_file(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(DecodeErrors, TextFileAndUnknownFormats) {
  expect_error("Hello, this is a text file.\nNot an image.\n", {"PNG, JPEG or WebP expected", "48 65 6c 6c"});
  expect_error("GIF89a\x01\x00\x01\x00", {"GIF", "not supported", "PNG, JPEG or WebP"});
  expect_error("BM\x3a\x00\x00\x00", {"BMP", "not supported"});
  EXPECT_THROW(decode_image_file(test::scratch_dir("decode-missing") + "/no-such-file.png"), Error);
}

TEST(DecodeErrors, RandomGarbage) {
  std::mt19937 rng(11);
  for (int round = 0; round < 20; ++round) {
    std::string bytes(size_t(1 + rng() % 4096), '\0');
    for (auto& c : bytes) c = char(rng());
    expect_error(bytes, {"PNG, JPEG or WebP"});
  }
  // Garbage behind each format's signature reaches the decoder and fails there.
  std::string tail(2000, '\0');
  for (auto& c : tail) c = char(rng());
  expect_error(std::string("\x89PNG\r\n\x1a\n", 8) + tail, {"PNG"});
  expect_error("\xff\xd8\xff" + tail, {"JPEG"});
  expect_error("RIFF" + std::string("\xd0\x07\0\0", 4) + "WEBP" + tail, {"WebP"});
}

TEST(DecodeErrors, TruncatedFiles) {
  const std::string png = read_file(test::data_path("images/chelsea_wide.png"));
  const std::string jpg = read_file(test::data_path("images/astronaut.jpg"));
  const std::string webp = small_webp();
  ASSERT_NO_THROW(decode_image(as_bytes(webp)));
  // PNG: cut inside the signature, the IHDR and the image data (Pillow, like libpng here,
  // does not need the chunks after the image data).
  for (size_t n : {size_t(5), size_t(20), size_t(40), png.size() / 2, png.size() * 9 / 10})
    expect_error(png.substr(0, n), {n < 8 ? "PNG, JPEG or WebP" : "truncated PNG"});
  // JPEG: cut inside the headers and the entropy-coded data.
  for (size_t n : {size_t(4), size_t(100), size_t(600), jpg.size() / 2, jpg.size() * 9 / 10})
    expect_error(jpg.substr(0, n), {"JPEG"});
  // Without its end-of-image marker too, as Pillow ("image file is truncated").
  ASSERT_EQ(jpg.substr(jpg.size() - 2), "\xff\xd9");
  expect_error(jpg.substr(0, jpg.size() - 2), {"truncated JPEG"});
  for (size_t n : {size_t(14), size_t(30), webp.size() / 2, webp.size() - 1})
    expect_error(webp.substr(0, n), {n < 12 ? "PNG, JPEG or WebP" : "WebP"});
}

// A PNG whose IHDR declares 100000 x 100000 (a valid CRC), followed by a little image data:
// refused from the header, before a 30 GB buffer is asked for.
TEST(DecodeErrors, PngAbsurdDimensionsRefusedBeforeAllocating) {
  std::string png = test::encode_png(test::raw_png(2, 2, 8, 2, std::vector<uint8_t>(12, 7)));
  ASSERT_EQ(png.substr(12, 4), "IHDR");
  png.replace(16, 8, be32(100000) + be32(100000));
  const uLong crc = crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17);  // type + 13 data bytes
  png.replace(29, 4, be32(uint32_t(crc)));
  const auto start = std::chrono::steady_clock::now();
  expect_error(png, {"100000 x 100000", "100000000", "limit"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// A real JPEG whose SOF declares 65000 x 65000.
TEST(DecodeErrors, JpegAbsurdDimensionsRefusedBeforeAllocating) {
  std::string jpg = read_file(test::data_path("images/astronaut.jpg"));
  size_t sof = std::string::npos;
  for (size_t i = 2; i + 9 < jpg.size(); ++i) {
    if (uint8_t(jpg[i]) == 0xff && (uint8_t(jpg[i + 1]) == 0xc0 || uint8_t(jpg[i + 1]) == 0xc2)) {
      sof = i;
      break;
    }
  }
  ASSERT_NE(sof, std::string::npos);
  // FF C0, length (2), precision (1), height (2), width (2)
  jpg[sof + 5] = char(65000 >> 8);
  jpg[sof + 6] = char(65000 & 0xff);
  jpg[sof + 7] = char(65000 >> 8);
  jpg[sof + 8] = char(65000 & 0xff);
  const auto start = std::chrono::steady_clock::now();
  expect_error(jpg, {"65000 x 65000", "limit"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// A lossless WebP whose VP8L header declares the format's maximum, 16384 x 16384.
TEST(DecodeErrors, WebpAbsurdDimensionsRefusedBeforeAllocating) {
  std::vector<uint8_t> rgb(4 * 4 * 3, 9);
  uint8_t* out = nullptr;
  const size_t size = WebPEncodeLosslessRGB(rgb.data(), 4, 4, 12, &out);
  std::string webp(reinterpret_cast<const char*>(out), size);
  WebPFree(out);
  ASSERT_EQ(webp.substr(12, 4), "VP8L");
  ASSERT_EQ(uint8_t(webp[20]), 0x2f);
  // 14 bits width - 1, 14 bits height - 1, then alpha and version bits, little-endian.
  uint32_t bits = uint32_t(uint8_t(webp[21])) | uint32_t(uint8_t(webp[22])) << 8 | uint32_t(uint8_t(webp[23])) << 16 |
                  uint32_t(uint8_t(webp[24])) << 24;
  bits = (bits & ~0x0fffffffu) | 16383u | 16383u << 14;
  for (int i = 0; i < 4; ++i) webp[size_t(21 + i)] = char(bits >> (8 * i));
  expect_error(webp, {"16384 x 16384", "limit"});
}

TEST(DecodeErrors, LimitIsConfigurableAndInclusive) {
  const std::string png = read_file(test::data_path("images/chelsea.png"));  // 451 x 300
  EXPECT_NO_THROW(decode_image(as_bytes(png), DecodeLimits{451 * 300}));
  expect_error(png, {"451 x 300", "135299"}, DecodeLimits{451 * 300 - 1});
  const std::string jpg = read_file(test::data_path("images/astronaut.jpg"));
  expect_error(jpg, {"512 x 512", "1000"}, DecodeLimits{1000});
  expect_error(small_webp(), {"40 x 30", "1000"}, DecodeLimits{1000});
}

// Random byte flips in valid files: each decode either succeeds or throws Error, quickly.
TEST(DecodeErrors, CorruptedBytesNeverCrash) {
  const std::vector<std::string> files = {read_file(test::data_path("images/chelsea_wide.png")),
                                          read_file(test::data_path("images/astronaut.jpg")), small_webp()};
  std::mt19937 rng(2024);
  int errors = 0, decoded = 0;
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& original : files) {
    for (int round = 0; round < 150; ++round) {
      std::string bytes = original;
      const int flips = 1 + int(rng() % 8);
      for (int f = 0; f < flips; ++f) bytes[4 + rng() % (bytes.size() - 4)] = char(rng());
      try {
        const RgbImage image = decode_image(as_bytes(bytes));
        EXPECT_EQ(image.pixels.size(), size_t(image.width * image.height * 3));
        ++decoded;
      } catch (const Error&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
  std::printf("  corrupted inputs: %d errors, %d decoded anyway\n", errors, decoded);
}

}  // namespace
}  // namespace unicorn::vision
