#include "models/gemma3/image_tokens.h"

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

}  // namespace unicorn::gemma3
