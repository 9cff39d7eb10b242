// Whole-file gzip reading and writing (zlib), for files that ship compressed, such as a
// tokenizer.json.gz next to a model.
#pragma once

#include <string>
#include <string_view>

namespace unicorn {

// Reads and decompresses a gzip file; throws Error naming the path when it cannot be opened
// or its data is corrupt or truncated.
std::string read_gzip_file(const std::string& path);

// Writes `data` as a gzip file at compression `level` (1 fastest .. 9 smallest); throws
// Error naming the path on failure.
void write_gzip_file(const std::string& path, std::string_view data, int level = 6);

}  // namespace unicorn
