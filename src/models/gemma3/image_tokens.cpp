#include "models/gemma3/image_tokens.h"

#include <algorithm>

#include "core/error.h"

namespace unicorn::gemma3 {

std::vector<ImageRun> find_image_runs(std::span<const int32_t> ids, int32_t image_token) {
  std::vector<ImageRun> runs;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != image_token) continue;
    if (i > 0 && ids[i - 1] == image_token) {
      ++runs.back().length;
    } else {
      runs.push_back({int64_t(i), 1});
    }
  }
  return runs;
}

std::vector<int32_t> image_groups(std::span<const int32_t> ids, int32_t image_token, int64_t start_pos) {
  std::vector<int32_t> groups(ids.size(), -1);
  for (const ImageRun& r : find_image_runs(ids, image_token))
    for (int64_t i = r.begin; i < r.begin + r.length; ++i) groups[size_t(i)] = int32_t(start_pos + r.begin);
  return groups;
}

std::vector<std::pair<int64_t, int64_t>> plan_chunks(std::span<const int32_t> ids, int32_t image_token,
                                                     int64_t max_chunk) {
  if (max_chunk <= 0) fail("chunk size must be positive, got {}", max_chunk);
  const std::vector<ImageRun> runs = find_image_runs(ids, image_token);
  std::vector<std::pair<int64_t, int64_t>> chunks;
  const int64_t n = int64_t(ids.size());
  size_t r = 0;  // first run that ends after `begin`
  for (int64_t begin = 0; begin < n;) {
    int64_t end = std::min(n, begin + max_chunk);
    while (r < runs.size() && runs[r].begin + runs[r].length <= begin) ++r;
    for (size_t k = r; k < runs.size() && runs[k].begin < end; ++k) {
      const int64_t run_end = runs[k].begin + runs[k].length;
      if (run_end > end) {  // the chunk would cut this image: stop before it
        if (runs[k].begin <= begin)
          fail("an image of {} tokens does not fit in a prefill chunk of {} tokens", runs[k].length, max_chunk);
        end = runs[k].begin;
        break;
      }
    }
    chunks.emplace_back(begin, end);
    begin = end;
  }
  return chunks;
}

}  // namespace unicorn::gemma3
