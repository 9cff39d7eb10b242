// `unicorn preprocess` end to end: the binary on the tiny multimodal model (224 px), its
// output read back and compared with the library's own preprocessing of the same file.
#include <gtest/gtest.h>

#include "core/error.h"
#include "formats/mapped_file.h"
#include "formats/safetensors.h"
#include "support/test_paths.h"
#include "vision/preprocess.h"

namespace unicorn {
namespace {

std::string quote(const std::string& s) { return "'" + s + "'"; }

test::CommandResult preprocess(const std::string& model, const std::string& image, const std::string& out,
                               bool pan_and_scan = false) {
  return test::run_command(quote(test::unicorn_binary()) + " preprocess -m " + quote(model) + " --image " +
                           quote(image) + (pan_and_scan ? " --pan-and-scan" : "") + " --out " + quote(out));
}

vision::PreprocessedImage library_result(const std::string& image, int64_t size, bool pan_and_scan) {
  const std::string bytes = read_file(image);
  vision::PreprocessOptions options;
  options.image_size = size;
  options.pan_and_scan = pan_and_scan;
  return vision::preprocess_image({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, options);
}

TEST(PreprocessCli, WritesPixelValuesAtTheModelsImageSize) {
  const std::string out = test::scratch_dir("cli-preprocess") + "/pv.safetensors";
  const std::string image = test::data_path("images/chelsea.png");
  const auto r = preprocess(test::data_path("models/tiny-mm"), image, out);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("[1, 3, 224, 224]"), std::string::npos) << r.out;
  const auto file = SafetensorsFile::open(out);
  const Tensor pv = file->tensor("pixel_values");
  EXPECT_EQ(pv.dtype(), DType::F32);
  EXPECT_EQ(pv.shape(), (Shape{1, 3, 224, 224}));
  EXPECT_EQ(file->metadata().at("num_crops"), "0");
  EXPECT_EQ(pv.to_f32(), library_result(image, 224, false).pixel_values.to_f32());
}

TEST(PreprocessCli, PanAndScanAddsCrops) {
  const std::string out = test::scratch_dir("cli-preprocess-pas") + "/pv.safetensors";
  const std::string image = test::data_path("images/astronaut_pano.png");
  const auto r = preprocess(test::data_path("models/tiny-mm"), image, out, true);
  ASSERT_EQ(r.status, 0) << r.err;
  const auto file = SafetensorsFile::open(out);
  const Tensor pv = file->tensor("pixel_values");
  EXPECT_EQ(pv.shape(), (Shape{4, 3, 224, 224}));
  EXPECT_EQ(file->metadata().at("num_crops"), "3");
  EXPECT_EQ(pv.to_f32(), library_result(image, 224, true).pixel_values.to_f32());
  // The 896 px model gets the same crops at its own size.
  const auto r896 = preprocess(test::data_path("models/tiny-mm-896"), image, out, true);
  ASSERT_EQ(r896.status, 0) << r896.err;
  EXPECT_EQ(SafetensorsFile::open(out)->tensor("pixel_values").shape(), (Shape{4, 3, 896, 896}));
}

TEST(PreprocessCli, ClearErrors) {
  const std::string dir = test::scratch_dir("cli-preprocess-errors");
  const std::string out = dir + "/pv.safetensors";
  auto r = preprocess(test::data_path("models/tiny-text"), test::data_path("images/chelsea.png"), out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("text-only"), std::string::npos) << r.err;

  const std::string text = dir + "/notes.jpg";
  test::write_bytes(text, "not an image at all\n");
  r = preprocess(test::data_path("models/tiny-mm"), text, out);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("PNG, JPEG or WebP"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("notes.jpg"), std::string::npos) << r.err;

  r = test::run_command(quote(test::unicorn_binary()) + " preprocess --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--pan-and-scan"), std::string::npos) << r.out;
  r = test::run_command(quote(test::unicorn_binary()) + " preprocess -m " + quote(test::data_path("models/tiny-mm")));
  EXPECT_NE(r.status, 0);  // --image and --out are required
}

}  // namespace
}  // namespace unicorn
