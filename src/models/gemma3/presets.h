// The configurations of the published Gemma 3 checkpoints (google/gemma-3-{1b,4b,12b,27b}-it
// config.json, hub style, fields at their defaults omitted as in the originals), for random
// models at the real shapes (benchmarks) and for `unicorn info --ctx` estimates.
#pragma once

#include <string>
#include <vector>

namespace unicorn::gemma3 {

// "1b", "4b", "12b" or "27b"; throws Error for anything else.
std::string published_config_json(const std::string& size);
std::vector<std::string> published_sizes();

}  // namespace unicorn::gemma3
