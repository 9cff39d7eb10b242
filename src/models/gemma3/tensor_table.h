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

// Checkpoint naming schemes.
enum class Naming {
  TextOnly,       // Gemma3ForCausalLM: model.layers.N..., model.embed_tokens.weight
  Hub,            // Gemma3ForConditionalGeneration as published: language_model.model.*, vision_tower.vision_model.*
  Transformers5,  // transformers 5: model.language_model.*, model.vision_tower.*, model.multi_modal_projector.*
};
std::string_view naming_name(Naming n);

struct TensorSpec {
  std::string canonical;  // text.blk.3.attn_q, vision.blk.0.fc1.bias, ...
  std::string hub;        // name in the Hub / TextOnly layout
  std::string hf5;        // name in the transformers-5 layout
  std::string gguf;       // llama.cpp name (text GGUF or mmproj GGUF)
  Shape shape;            // PyTorch layout ([out, in] for linear weights)
  Component component;
  bool matrix;  // a 2-D weight of a linear op (quantizable)
  std::string name_for(Naming n) const;
};

// All tensors of the model the config describes, in a stable order.
std::vector<TensorSpec> tensor_table(const Config& config);

}  // namespace unicorn::gemma3
