// Image token runs in a token sequence: each maximal run of the image token is one image,
// whose tokens attend to each other bidirectionally (ref: modeling_gemma3
// token_type_ids_mask_function). A run's group id is the absolute position of its first
// token, unique within a sequence.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace unicorn::gemma3 {

struct ImageRun {
  int64_t begin;  // index of the first image token
  int64_t length;
};

std::vector<ImageRun> find_image_runs(std::span<const int32_t> ids, int32_t image_token);

// Group per token: -1 for text, the run's absolute start (start_pos + begin) for image tokens.
std::vector<int32_t> image_groups(std::span<const int32_t> ids, int32_t image_token, int64_t start_pos);

}  // namespace unicorn::gemma3
