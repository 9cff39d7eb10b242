// The declarative table of Gemma 3 tensors: for each one its canonical name, its names in
// the checkpoint layouts we read, its expected shape from the config, and whether it is a
// matrix that quantization may touch. The loader checks a checkpoint against this table
// before using anything.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/gemma3/config.h"

namespace unicorn::gemma3 {

enum class Component { Text, Vision, Projector };
std::string_view component_name(Component c);

// Hugging Face checkpoints name a tensor as <prefix><inner>, the prefix depending on the
// component and on who wrote the file: the published hub layout (language_model.model.*,
// vision_tower.vision_model.*), transformers 5 in memory (model.language_model.*,
// model.vision_tower.*), transformers 5 save_pretrained (language_model.model.*,
// vision_tower.*), and Gemma3ForCausalLM (model.*). The loader tries these in order.
std::vector<std::string> hf_prefixes(Component c, bool multimodal);

struct TensorSpec {
  std::string canonical;  // text.blk.3.attn_q, vision.blk.0.fc1_bias, ...
  std::string inner;      // HF name after the component prefix: layers.3.self_attn.q_proj.weight
  std::string gguf;       // llama.cpp name (text GGUF or mmproj GGUF)
  Shape shape;            // PyTorch layout ([out, in] for linear weights)
  Component component;
  bool matrix;  // a 2-D weight of a linear op (quantizable)
};

// All tensors of the model the config describes, in a stable order.
std::vector<TensorSpec> tensor_table(const Config& config);

}  // namespace unicorn::gemma3
