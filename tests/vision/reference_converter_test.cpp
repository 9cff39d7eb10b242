// Writes tests/data/images/ from the shared transformers references (shared/reference/images
// and pan-and-scan, made by refgen.py and pas.py): the source images, Pillow's decoded RGB as
// an RGB PNG (unless the source PNG itself holds exactly those pixels), and each [S, S]
// channel plane of the processor's k values as a gray PNG, listed in expected.json. The
// reference safetensors (22 MB + 10 MB) stay out of the repository; the PNGs hold the same
// bytes losslessly, and identical planes (a grayscale image's three channels, a pan-and-scan
// crop that equals another image's output) are stored once.
// Run once by hand (it overwrites tests/data/images/):
//   unicorn_tests --gtest_also_run_disabled_tests --gtest_filter=ImageReferenceConverter.DISABLED_WriteTestData
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "formats/safetensors.h"
#include "support/png_io.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  return json::parse(in);
}

struct Writer {
  fs::path out;
  int64_t image_size = 0;
  std::map<std::string, std::vector<uint8_t>> blocks;  // file name -> content

  // Stores one [S, S] plane as a gray PNG unless an identical one is stored already.
  std::string block(const std::string& stem, const uint8_t* data) {
    const size_t n = size_t(image_size * image_size);
    for (const auto& [file, content] : blocks)
      if (std::equal(content.begin(), content.end(), data)) return file;
    const std::string file = "k_" + stem + ".png";
    test::PngPixels png{image_size, image_size, 1, std::vector<uint8_t>(data, data + n)};
    test::write_png((out / file).string(), png);
    blocks[file] = png.data;
    return file;
  }

  std::vector<std::string> blocks_of(const Tensor& k, const std::string& stem) {
    EXPECT_EQ(k.dtype(), DType::U8);
    EXPECT_EQ(k.rank(), 4);
    EXPECT_EQ(k.dim(2), image_size);
    EXPECT_EQ(k.dim(3), image_size);
    std::vector<std::string> files;
    EXPECT_EQ(k.dim(1), 3);
    for (int64_t i = 0; i < k.dim(0) * 3; ++i)
      files.push_back(block(stem + "_" + std::to_string(i / 3) + "rgb"[i % 3], k.data<uint8_t>() + i * image_size * image_size));
    return files;
  }
};

TEST(ImageReferenceConverter, DISABLED_WriteTestData) {
  const fs::path ref = test::repo_path("../shared/reference");
  ASSERT_TRUE(fs::exists(ref / "images/manifest.json")) << "no shared reference at " << ref;
  Writer w;
  w.out = test::data_path("images");
  w.image_size = 896;
  fs::create_directories(w.out);
  json cases = json::array();

  const auto images = SafetensorsFile::open((ref / "images/pixel_values.safetensors").string());
  for (const json& entry : read_json(ref / "images/manifest.json")) {
    const std::string file = entry.at("file");
    fs::copy_file(ref / "images" / file, w.out / file, fs::copy_options::overwrite_existing);
    std::string key = file;
    std::replace(key.begin(), key.end(), '.', '_');
    const Tensor rgb = images->tensor(key + ".decoded_rgb");  // [H, W, 3]
    const std::vector<uint8_t> pillow(rgb.data<uint8_t>(), rgb.data<uint8_t>() + rgb.numel());
    // A PNG source whose pixels, read by the test reader, are already what Pillow decoded is
    // its own reference; anything else (JPEG, alpha) gets Pillow's RGB stored beside it.
    std::string decoded = file;
    const bool is_png = file.size() > 4 && file.substr(file.size() - 4) == ".png";
    if (!is_png || test::expand_to_rgb(test::read_png((w.out / file).string())) != pillow) {
      decoded = "decoded_" + key + ".png";
      test::write_png((w.out / decoded).string(), test::PngPixels{rgb.dim(1), rgb.dim(0), 3, pillow});
    }
    for (const auto& [name, output] : entry.at("outputs").items()) {
      const std::string prefix = key + ".Gemma3ImageProcessorPil.pas";
      if (name.rfind(prefix, 0) != 0) continue;  // the torchvision processor is not the one to match
      ASSERT_EQ(output.at("stored_as"), "uint8 k, value = k/127.5 - 1") << name;
      const std::string pas = name.substr(prefix.size());
      const Tensor k = images->tensor(name);
      cases.push_back({{"name", key + ".pas" + pas},
                       {"file", file},
                       {"decoded", decoded},
                       {"pan_and_scan", pas == "1"},
                       {"num_crops", output.at("num_crops").at(0)},
                       {"pixel_values_k", w.blocks_of(k, key + "_pas" + pas)}});
      ASSERT_EQ(k.dim(0), 1 + cases.back()["num_crops"].get<int64_t>()) << name;
    }
  }

  const auto pas = SafetensorsFile::open((ref / "pan-and-scan/pixel_values.safetensors").string());
  for (const json& entry : read_json(ref / "pan-and-scan/manifest.json")) {
    const std::string file = entry.at("file");
    fs::copy_file(ref / "pan-and-scan" / file, w.out / file, fs::copy_options::overwrite_existing);
    std::string key = file;
    std::replace(key.begin(), key.end(), '.', '_');
    const Tensor k = pas->tensor(key + ".pixel_values_k");
    cases.push_back({{"name", key + ".pas1"},
                     {"file", file},
                     {"pan_and_scan", true},
                     {"num_crops", entry.at("num_crops").at(0)},
                     {"pixel_values_k", w.blocks_of(k, key + "_pas1")}});
    ASSERT_EQ(k.dim(0), 1 + cases.back()["num_crops"].get<int64_t>()) << file;
  }

  const json out = {{"generated_by", "tests/vision/reference_converter_test.cpp from shared/reference (refgen.py, pas.py)"},
                    {"reference", "transformers 5.17.0 Gemma3ImageProcessorPil (Pillow resize, BILINEAR), size 896x896; "
                                  "pan-and-scan: min crop 256, max 4 crops, activation ratio 1.2"},
                    {"image_size", w.image_size},
                    {"cases", cases}};
  std::ofstream((w.out / "expected.json").string()) << out.dump(1) << "\n";

  // Read everything back through the test reader: the stored PNGs must hold the exact bytes.
  for (const auto& [file, content] : w.blocks) EXPECT_EQ(test::read_png((w.out / file).string()).data, content) << file;
}

}  // namespace
}  // namespace unicorn
