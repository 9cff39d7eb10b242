#include "models/gemma3/weights.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "core/error.h"
#include "models/gemma3/tensor_table.h"
#include "support/test_paths.h"

namespace unicorn::gemma3 {
namespace {

namespace fs = std::filesystem;

// Copies tiny-text into a scratch folder, letting `edit` change the tensor list on the way.
std::string edited_copy(const std::string& name,
                        const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
  const std::string src = test::data_path("models/tiny-text");
  const std::string dir = test::scratch_dir(name);
  fs::copy_file(src + "/config.json", dir + "/config.json");
  auto file = SafetensorsFile::open(src + "/model.safetensors");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& e : file->entries()) tensors.emplace_back(e.name, file->tensor(e));
  edit(tensors);
  SafetensorsWriter w;
  for (const auto& [n, t] : tensors) w.add(n, t);
  w.write(dir + "/model.safetensors");
  return dir;
}

std::string load_error(const std::string& dir) {
  const Config c = load_config(dir);
  try {
    Weights::from_safetensors(std::make_shared<const SafetensorsSet>(SafetensorsSet::open(dir)), c);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TensorTable, CountsAndNames) {
  const Config c = load_config(test::data_path("models/tiny-mm"));
  const auto table = tensor_table(c);
  // 1 embed + 13 per text layer + final norm; 3 embeddings + 16 per vision layer + 2 post norm; 2 projector.
  EXPECT_EQ(table.size(), size_t(1 + 13 * 6 + 1 + 3 + 16 * 3 + 2 + 2));
  const TensorSpec& q = table[2];
  EXPECT_EQ(q.canonical, "text.blk.0.attn_q");
  EXPECT_EQ(q.inner, "layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.gguf, "blk.0.attn_q.weight");
  EXPECT_EQ(q.shape, (Shape{128, 64}));
  EXPECT_TRUE(q.matrix);
  const TensorSpec& proj = table.back();
  EXPECT_EQ(proj.inner, "mm_input_projection_weight");
  EXPECT_EQ(proj.shape, (Shape{48, 64}));  // [vision, text]: a matmul operand, not nn.Linear
}

TEST(Weights, LoadsAllNamings) {
  for (const char* m : {"tiny-text", "tiny-mm", "tiny-mm-896", "tiny-realvocab"}) {
    const std::string dir = test::data_path(std::string("models/") + m);
    EXPECT_EQ(load_error(dir), "") << m;
  }
  auto prefixes = [](const std::string& dir) {
    const Config c = load_config(dir);
    const Weights w = Weights::from_safetensors(std::make_shared<const SafetensorsSet>(SafetensorsSet::open(dir)), c);
    return w.prefix(Component::Text) + "|" + w.prefix(Component::Vision) + "|" + w.prefix(Component::Projector);
  };
  EXPECT_EQ(prefixes(test::data_path("models/tiny-mm")),
            "language_model.model.|vision_tower.vision_model.|multi_modal_projector.");  // published hub layout
  EXPECT_EQ(prefixes(test::data_path("models/tiny-mm-896")),
            "model.language_model.|model.vision_tower.|model.multi_modal_projector.");  // transformers 5
  EXPECT_EQ(prefixes(test::data_path("models/tiny-text")), "model.||");
  // transformers 5 save_pretrained: the bundled demo model.
  EXPECT_EQ(prefixes(test::repo_path("models/demo")), "language_model.model.|vision_tower.|multi_modal_projector.");
}

TEST(Weights, MissingTensor) {
  const std::string dir = edited_copy("w-missing", [](auto& t) {
    std::erase_if(t, [](auto& p) { return p.first == "model.layers.2.mlp.up_proj.weight"; });
  });
  const std::string err = load_error(dir);
  EXPECT_NE(err.find("missing tensor 'model.layers.2.mlp.up_proj.weight'"), std::string::npos) << err;
  EXPECT_NE(err.find("[128, 64]"), std::string::npos) << err;
}

TEST(Weights, MisshapenTensor) {
  const std::string dir = edited_copy("w-shape", [](auto& t) {
    for (auto& [n, x] : t)
      if (n == "model.layers.1.self_attn.k_proj.weight") x = x.reshaped({8, 128});
  });
  const std::string err = load_error(dir);
  EXPECT_NE(err.find("'model.layers.1.self_attn.k_proj.weight' has shape [8, 128], expected [16, 64]"),
            std::string::npos)
      << err;
}

TEST(Weights, UnexpectedTensor) {
  const std::string dir = edited_copy("w-extra", [](auto& t) {
    t.emplace_back("model.layers.9.self_attn.q_proj.weight", Tensor::zeros(DType::BF16, {4, 4}));
  });
  const std::string err = load_error(dir);
  EXPECT_NE(err.find("model.layers.9.self_attn.q_proj.weight"), std::string::npos) << err;
  // A tied lm_head.weight copy is allowed.
  const std::string ok = edited_copy("w-lmhead", [](auto& t) {
    t.emplace_back("lm_head.weight", Tensor::zeros(DType::BF16, {1024, 64}));
  });
  EXPECT_EQ(load_error(ok), "");
}

TEST(Weights, WrongDtype) {
  const std::string dir = edited_copy("w-dtype", [](auto& t) {
    for (auto& [n, x] : t)
      if (n == "model.norm.weight") x = Tensor::zeros(DType::I32, {64});
  });
  EXPECT_NE(load_error(dir).find("dtype I32"), std::string::npos);
}

TEST(Weights, ConfigDisagreesWithWeights) {
  // A multimodal config over text-only weights: nothing is found under the expected names.
  const std::string dir = test::scratch_dir("w-mismatch");
  fs::copy_file(test::data_path("models/tiny-mm/config.json"), dir + "/config.json");
  fs::copy_file(test::data_path("models/tiny-text/model.safetensors"), dir + "/model.safetensors");
  EXPECT_NE(load_error(dir).find("no text weights found"), std::string::npos);
}

}  // namespace
}  // namespace unicorn::gemma3
