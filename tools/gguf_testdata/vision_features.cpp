// Writes tests/data/gguf/vision-features.safetensors: the image features of the reference
// astronaut pixel values (hf-excerpt.safetensors) through the vision tower + projector of the
// Hugging Face checkpoint that llama.cpp's mmproj was converted from, computed by this engine
// from the safetensors weights. The GGUF loader test compares the mmproj path against it.
//   g++ -std=c++20 -O2 -Isrc tools/gguf_testdata/vision_features.cpp build/libunicorn_engine.a \
//     -lfmt -lhwy -lpng -ljpeg -lz -lwebp -lpthread -o /tmp/vision_features
//   /tmp/vision_features /path/to/shared/reference/gguf/tiny-mm-realvocab tests/data/gguf
#include <cstdio>
#include <memory>

#include "formats/safetensors.h"
#include "models/gemma3/model.h"
#include "ops/reference_backend.h"

using namespace unicorn;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s HF_FOLDER OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::string hf = argv[1], out = argv[2];
  gemma3::Config config = gemma3::load_config(hf);
  auto files = std::make_shared<const SafetensorsSet>(SafetensorsSet::open(hf));
  ReferenceBackend backend;
  gemma3::Model model(config, gemma3::Weights::from_safetensors(files, config), gemma3::Placement::all(backend));
  const auto excerpt = SafetensorsFile::open(out + "/hf-excerpt.safetensors");
  const Tensor k = excerpt->tensor("image_chat.pixel_values_u8");
  std::vector<float> v(size_t(k.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(k.data<const uint8_t>()[i]) / 127.5f - 1.0f;
  const auto img = model.encode_images(Tensor::from_f32(v, k.shape()));
  SafetensorsWriter w;
  w.add("image_features", img.features);
  w.set_metadata("source", "unicorn ReferenceBackend on tiny-mm-realvocab/model.safetensors (bf16)");
  w.write(out + "/vision-features.safetensors");
  std::printf("features %s, first %g\n", shape_str(img.features.shape()).c_str(), img.features.data<float>()[0]);
  return 0;
}
