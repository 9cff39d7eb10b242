// Where tests find their data, and scratch files for tests that write.
#pragma once

#include <string>
#include <string_view>

namespace unicorn::test {

// tests/data/<rel>
std::string data_path(std::string_view rel);
// The repository root (for the demo model and node_modules).
std::string repo_path(std::string_view rel);
// The real Gemma 3 tokenizer.json installed by scripts/install-deps.sh (npm).
std::string real_tokenizer_json();
// The built `unicorn` binary.
std::string unicorn_binary();
// A fresh empty directory for this test (removed at the next run, kept for inspection).
std::string scratch_dir(std::string_view name);
// Writes bytes to a file, creating it.
void write_bytes(const std::string& path, std::string_view bytes);

// Runs a shell command; returns its exit status and fills stdout/stderr.
struct CommandResult {
  int status = -1;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::string& command, std::string_view stdin_text = {});

}  // namespace unicorn::test
