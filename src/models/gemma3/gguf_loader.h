// Gemma 3 from llama.cpp's GGUF files: the text model (general.architecture "gemma3") and,
// optionally, the vision tower + projector of an mmproj file ("clip", projector_type
// "gemma3"), as llama.cpp's convert_hf_to_gguf.py writes them.
//
// Config: the GGUF metadata is translated into a Hugging Face config (gemma3.* and
// clip.vision.* keys) and parsed by parse_config, so defaults and validation are the same as
// for config.json. What the metadata does not say, llama.cpp decides, and so do we:
//   - layer types: llama.cpp's gemma3 uses a fixed pattern of 6 (every 6th layer global);
//     gemma3.attention.sliding_window_pattern, when a file has it, overrides (a count, or one
//     bool per layer, true = sliding);
//   - query_pre_attn_scalar: key_length, except for the 62-layer model (27B), where
//     llama.cpp uses embedding_length / head_count (5376 / 32 = 168);
//   - tokens per image: (patches per side / clip.vision.projector.scale_factor)^2, the
//     factor defaulting to 4; image token ids from the embedded vocabulary's pieces.
//
// Weights, by tensor_table's TensorSpec::gguf names, with two transforms:
//   - the text RMSNorm weights and mm.soft_emb_norm are stored with 1 added (llama.cpp's
//     norm multiplies by w, ours by 1 + w): they are converted to F32 and 1 is subtracted;
//   - everything else is a zero-copy view: GGUF keeps Hugging Face's layouts (linear
//     weights [out, in], the patch embedding [V, 3, p, p], mm.input_projection
//     [vision, text] untransposed); matrices may be in ggml block formats.
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.h"
#include "models/gemma3/config.h"
#include "models/gemma3/weights.h"

namespace unicorn::gemma3 {

// True for a path naming a GGUF file: by its extension (.gguf), or a file that starts with
// GGUF's magic.
bool is_gguf_path(const std::string& path);

// The configuration of a text GGUF and, when given, its mmproj (null: a text-only model,
// even if the checkpoint was multimodal).
Config config_from_gguf(const GgufFile& text, const GgufFile* mmproj);

struct GgufModel {
  Config config;
  Weights weights;
  std::shared_ptr<const GgufFile> text;
  std::shared_ptr<const GgufFile> mmproj;  // null for a text-only model
};

GgufModel load_gguf_model(std::shared_ptr<const GgufFile> text, std::shared_ptr<const GgufFile> mmproj);
// Opens the files; an empty mmproj_path loads the text model alone.
GgufModel load_gguf_model(const std::string& path, const std::string& mmproj_path);

}  // namespace unicorn::gemma3
