#include "support/image_reference.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "support/png_io.h"
#include "support/test_paths.h"

namespace unicorn::test {

std::string image_data_path(const std::string& rel) { return data_path("images/" + rel); }

ImageReference load_image_reference() {
  const std::string path = image_data_path("expected.json");
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const nlohmann::json j = nlohmann::json::parse(in);
  ImageReference ref;
  ref.image_size = j.at("image_size").get<int64_t>();
  for (const auto& c : j.at("cases")) {
    ImageReferenceCase rc;
    rc.name = c.at("name").get<std::string>();
    rc.file = c.at("file").get<std::string>();
    rc.decoded = c.value("decoded", "");
    rc.pan_and_scan = c.at("pan_and_scan").get<bool>();
    rc.num_crops = c.at("num_crops").get<int64_t>();
    rc.pixel_values_k = c.at("pixel_values_k").get<std::vector<std::string>>();
    ref.cases.push_back(std::move(rc));
  }
  return ref;
}

ExpectedRgb expected_decoded(const ImageReferenceCase& c) {
  if (c.decoded.empty()) throw std::runtime_error(c.name + ": no decoded reference");
  const PngPixels png = read_png(image_data_path(c.decoded));
  return {png.width, png.height, expand_to_rgb(png)};
}

std::vector<uint8_t> expected_pixel_k(const ImageReference& reference, const ImageReferenceCase& c) {
  const int64_t s = reference.image_size;
  std::vector<uint8_t> all;
  for (const std::string& file : c.pixel_values_k) {
    const PngPixels png = read_png(image_data_path(file));
    if (png.channels != 1 || png.width != s || png.height != s)
      throw std::runtime_error(file + ": expected a gray " + std::to_string(s) + "x" + std::to_string(s) + " PNG");
    all.insert(all.end(), png.data.begin(), png.data.end());
  }
  return all;
}

}  // namespace unicorn::test
