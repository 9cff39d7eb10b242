#include "vision/decode.h"

#include <gtest/gtest.h>
#include <png.h>
#include <webp/encode.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "support/image_reference.h"
#include "support/png_io.h"
#include "support/test_paths.h"

namespace unicorn::vision {
namespace {

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Every reference image decodes to what Pillow's convert("RGB") gave: PNG exactly, JPEG
// within one level (libjpeg-turbo builds may round the IDCT differently, see the brief).
TEST(Decode, MatchesPillowOnReferenceImages) {
  const test::ImageReference ref = test::load_image_reference();
  int checked = 0;
  std::set<std::string> seen;
  for (const auto& c : ref.cases) {
    if (c.decoded.empty() || !seen.insert(c.file).second) continue;
    const test::ExpectedRgb expected = test::expected_decoded(c);
    const RgbImage image = decode_image_file(test::image_data_path(c.file));
    ASSERT_EQ(image.width, expected.width) << c.file;
    ASSERT_EQ(image.height, expected.height) << c.file;
    ASSERT_EQ(image.pixels.size(), expected.pixels.size()) << c.file;
    int64_t mismatches = 0;
    int max_diff = 0;
    for (size_t i = 0; i < image.pixels.size(); ++i) {
      const int d = std::abs(int(image.pixels[i]) - int(expected.pixels[i]));
      mismatches += d != 0;
      max_diff = std::max(max_diff, d);
    }
    const bool is_jpeg = c.file.ends_with(".jpg");
    std::printf("  decode %-20s %lldx%lld  mismatches %lld / %zu  max diff %d\n", c.file.c_str(),
                (long long)image.width, (long long)image.height, (long long)mismatches, image.pixels.size(), max_diff);
    if (is_jpeg) {
      EXPECT_LE(max_diff, 1) << c.file;
    } else {
      EXPECT_EQ(mismatches, 0) << c.file;
    }
    ++checked;
  }
  EXPECT_GE(checked, 6);  // astronaut png+jpg, chelsea, chelsea_wide, camera (L), rgba_checker
}

TEST(Decode, DetectsFormatByContentNotName) {
  const std::string png = read_file(test::image_data_path("rgba_checker.png"));
  const std::string jpg = read_file(test::image_data_path("astronaut.jpg"));
  EXPECT_EQ(detect_image_format(as_bytes(png)), ImageFormat::Png);
  EXPECT_EQ(detect_image_format(as_bytes(jpg)), ImageFormat::Jpeg);
  EXPECT_EQ(detect_image_format(as_bytes(std::string("RIFF\x10\0\0\0WEBPVP8L", 16))), ImageFormat::Webp);
  EXPECT_EQ(detect_image_format(as_bytes(std::string("RIFF\x10\0\0\0WAVEfmt ", 16))), ImageFormat::Unknown);
  // A JPEG saved under a .png name still decodes as JPEG.
  const std::string misnamed = test::scratch_dir("decode-misnamed") + "/photo.png";
  test::write_bytes(misnamed, jpg);
  const RgbImage image = decode_image_file(misnamed);
  EXPECT_EQ(image.width, 512);
  EXPECT_EQ(image.height, 512);
}

// --- PNG layouts without a Pillow reference file: Pillow's documented conversions ----------

RgbImage decode_raw_png(const test::RawPng& raw) {
  const std::string bytes = test::encode_png(raw);
  return decode_image(as_bytes(bytes));
}

std::vector<uint8_t> gray_to_rgb(const std::vector<uint8_t>& gray) {
  std::vector<uint8_t> rgb;
  for (uint8_t v : gray) rgb.insert(rgb.end(), {v, v, v});
  return rgb;
}

TEST(Decode, PngGrayLowBitDepthsScaleLikePillow) {
  // 1-bit: Pillow mode "1" -> 0 / 255; 2-bit and 4-bit: unpacked x85 and x17 (Unpack.c).
  const test::RawPng one = test::raw_png(8, 1, 1, PNG_COLOR_TYPE_GRAY, {0b10110001});
  EXPECT_EQ(decode_raw_png(one).pixels, gray_to_rgb({255, 0, 255, 255, 0, 0, 0, 255}));
  const test::RawPng two = test::raw_png(4, 1, 2, PNG_COLOR_TYPE_GRAY, {0b00011011});
  EXPECT_EQ(decode_raw_png(two).pixels, gray_to_rgb({0, 85, 170, 255}));
  const test::RawPng four = test::raw_png(2, 1, 4, PNG_COLOR_TYPE_GRAY, {0x0f});
  EXPECT_EQ(decode_raw_png(four).pixels, gray_to_rgb({0, 255}));
}

TEST(Decode, Png16BitReducedLikePillow) {
  // Gray 16-bit is Pillow mode "I;16", whose conversion to RGB clips at 255 (Convert.c I16_RGB);
  // every other 16-bit layout keeps the high byte of each sample.
  const test::RawPng gray = test::raw_png(4, 1, 16, PNG_COLOR_TYPE_GRAY, {0x00, 0x07, 0x00, 0xff, 0x01, 0x00, 0xff, 0xff});
  EXPECT_EQ(decode_raw_png(gray).pixels, gray_to_rgb({7, 255, 255, 255}));
  const test::RawPng rgb = test::raw_png(1, 1, 16, PNG_COLOR_TYPE_RGB, {0x12, 0x34, 0x80, 0xff, 0x00, 0x99});
  EXPECT_EQ(decode_raw_png(rgb).pixels, (std::vector<uint8_t>{0x12, 0x80, 0x00}));
  const test::RawPng rgba = test::raw_png(1, 1, 16, PNG_COLOR_TYPE_RGB_ALPHA, {1, 2, 3, 4, 5, 6, 0, 0});
  EXPECT_EQ(decode_raw_png(rgba).pixels, (std::vector<uint8_t>{1, 3, 5}));
  const test::RawPng ga = test::raw_png(1, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, {0x40, 0xff, 0x00, 0x00});
  EXPECT_EQ(decode_raw_png(ga).pixels, gray_to_rgb({0x40}));
}

TEST(Decode, PngAlphaIsDroppedNotComposited) {
  const test::RawPng ga = test::raw_png(2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, {10, 0, 200, 255});
  EXPECT_EQ(decode_raw_png(ga).pixels, gray_to_rgb({10, 200}));
  const test::RawPng rgba = test::raw_png(1, 1, 8, PNG_COLOR_TYPE_RGB_ALPHA, {9, 8, 7, 0});
  EXPECT_EQ(decode_raw_png(rgba).pixels, (std::vector<uint8_t>{9, 8, 7}));
  // A tRNS color key marks transparency without changing the color.
  test::RawPng keyed = test::raw_png(1, 1, 8, PNG_COLOR_TYPE_RGB, {9, 8, 7});
  keyed.trns = {0, 9, 0, 8, 0, 7};
  EXPECT_EQ(decode_raw_png(keyed).pixels, (std::vector<uint8_t>{9, 8, 7}));
}

TEST(Decode, PngPaletteExpanded) {
  // 2-bit indices 0..3 through a 3-entry palette with tRNS: index 3 is past the palette, and
  // Pillow's palette starts as a gray ramp (ImagingPaletteNew), so it reads (3, 3, 3).
  test::RawPng pal = test::raw_png(4, 1, 2, PNG_COLOR_TYPE_PALETTE, {0b00011011});
  pal.palette = {255, 0, 0, 0, 255, 0, 0, 0, 255};
  pal.trns = {0, 128};
  EXPECT_EQ(decode_raw_png(pal).pixels, (std::vector<uint8_t>{255, 0, 0, 0, 255, 0, 0, 0, 255, 3, 3, 3}));
}

TEST(Decode, PngInterlacedEqualsProgressive) {
  test::RawPng raw = test::raw_png(37, 23, 8, PNG_COLOR_TYPE_RGB, {});
  std::mt19937 rng(5);
  for (int i = 0; i < 37 * 23 * 3; ++i) raw.rows.push_back(uint8_t(rng()));
  const RgbImage plain = decode_raw_png(raw);
  raw.interlaced = true;
  const RgbImage adam7 = decode_raw_png(raw);
  EXPECT_EQ(plain.pixels, raw.rows);
  EXPECT_EQ(adam7.pixels, raw.rows);
}

// A JPEG written by libjpeg from `samples` (1, 3 or 4 components) at quality 100.
std::string encode_jpeg(int width, int height, int components, J_COLOR_SPACE space, const std::vector<uint8_t>& samples) {
  jpeg_compress_struct cinfo;
  jpeg_error_mgr err;
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* out = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &out, &size);
  cinfo.image_width = JDIMENSION(width);
  cinfo.image_height = JDIMENSION(height);
  cinfo.input_components = components;
  cinfo.in_color_space = space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 100, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(samples.data() + size_t(cinfo.next_scanline) * size_t(width * components));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::string bytes(reinterpret_cast<const char*>(out), size);
  std::free(out);
  return bytes;
}

TEST(Decode, JpegGrayscaleReplicated) {
  const int w = 32, h = 16;
  std::vector<uint8_t> gray;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) gray.push_back(uint8_t(x * 8));
  const RgbImage image = decode_image(as_bytes(encode_jpeg(w, h, 1, JCS_GRAYSCALE, gray)));
  ASSERT_EQ(image.pixels.size(), gray.size() * 3);
  for (size_t i = 0; i < gray.size(); ++i) {
    EXPECT_EQ(image.pixels[3 * i], image.pixels[3 * i + 1]);
    EXPECT_EQ(image.pixels[3 * i], image.pixels[3 * i + 2]);
    EXPECT_NEAR(image.pixels[3 * i], gray[i], 3) << i;  // quality 100: tiny loss
  }
}

TEST(Decode, JpegCmykReadAsAdobeInverted) {
  // Pillow reads every 4-component JPEG as inverted CMYK ("CMYK;I") and converts with
  // R = (255 - K') - (255 - K') * C' / 255 over the inverted C', K' (Convert.c cmyk2rgb).
  const int w = 16, h = 16;
  std::vector<uint8_t> stored;
  for (int i = 0; i < w * h; ++i) stored.insert(stored.end(), {200, 120, 40, 230});
  const RgbImage image = decode_image(as_bytes(encode_jpeg(w, h, 4, JCS_CMYK, stored)));
  const double nk = 230;  // 255 - inverted K = stored K
  for (int c = 0; c < 3; ++c) {
    const double inverted = 255 - stored[size_t(c)];
    const double expected = nk - inverted * nk / 255.0;
    EXPECT_NEAR(image.pixels[size_t(c)], expected, 3) << "channel " << c;
  }
}

TEST(Decode, WebpLosslessRoundTrip) {
  const int w = 61, h = 47;
  std::vector<uint8_t> rgb(size_t(w * h * 3));
  std::mt19937 rng(7);
  for (auto& v : rgb) v = uint8_t(rng());
  uint8_t* encoded = nullptr;
  const size_t size = WebPEncodeLosslessRGB(rgb.data(), w, h, w * 3, &encoded);
  ASSERT_GT(size, 0u);
  const std::string bytes(reinterpret_cast<const char*>(encoded), size);
  WebPFree(encoded);
  EXPECT_EQ(detect_image_format(as_bytes(bytes)), ImageFormat::Webp);
  const RgbImage image = decode_image(as_bytes(bytes));
  EXPECT_EQ(image.width, w);
  EXPECT_EQ(image.height, h);
  EXPECT_EQ(image.pixels, rgb);
}

TEST(Decode, WebpAlphaDropped) {
  const int w = 4, h = 2;
  std::vector<uint8_t> rgba;
  for (int i = 0; i < w * h; ++i) rgba.insert(rgba.end(), {uint8_t(30 * i), uint8_t(255 - i), 77, uint8_t(i % 2 ? 0 : 255)});
  // exact: keep the color under fully transparent pixels, as the file then stores it.
  WebPConfig config;
  ASSERT_TRUE(WebPConfigInit(&config));
  config.lossless = 1;
  config.exact = 1;
  WebPPicture pic;
  ASSERT_TRUE(WebPPictureInit(&pic));
  pic.use_argb = 1;
  pic.width = w;
  pic.height = h;
  ASSERT_TRUE(WebPPictureImportRGBA(&pic, rgba.data(), w * 4));
  WebPMemoryWriter writer;
  WebPMemoryWriterInit(&writer);
  pic.writer = WebPMemoryWrite;
  pic.custom_ptr = &writer;
  ASSERT_TRUE(WebPEncode(&config, &pic));
  WebPPictureFree(&pic);
  const std::string bytes(reinterpret_cast<const char*>(writer.mem), writer.size);
  WebPMemoryWriterClear(&writer);
  const RgbImage image = decode_image(as_bytes(bytes));
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(image.pixels[size_t(3 * i + c)], rgba[size_t(4 * i + c)]) << i;
}

}  // namespace
}  // namespace unicorn::vision
