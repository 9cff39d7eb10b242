// Image token runs in a token sequence: each maximal run of the image token is one image,
// whose tokens attend to each other bidirectionally (ref: modeling_gemma3
// token_type_ids_mask_function). A run's group id is the absolute position of its first
// token, unique within a sequence.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace unicorn::gemma3 {

struct ImageRun {
  int64_t begin;  // index of the first image token
  int64_t length;
};

std::vector<ImageRun> find_image_runs(std::span<const int32_t> ids, int32_t image_token);

// Group per token: -1 for text, the run's absolute start (start_pos + begin) for image tokens.
std::vector<int32_t> image_groups(std::span<const int32_t> ids, int32_t image_token, int64_t start_pos);

// Splits ids into chunks of at most max_chunk tokens for prefill, never cutting an image run
// (its tokens attend to later tokens of the same run). Returns [begin, end) pairs. Throws
// Error if an image run is longer than max_chunk.
std::vector<std::pair<int64_t, int64_t>> plan_chunks(std::span<const int32_t> ids, int32_t image_token,
                                                     int64_t max_chunk);

}  // namespace unicorn::gemma3
