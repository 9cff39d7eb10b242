// Backends for tests that run on every device: the CPU always; CUDA where a GPU is present.
// On the GPU machine set UNICORN_REQUIRE_CUDA=1 so a missing GPU fails instead of skipping.
#pragma once

#include <memory>
#include <string>

#include "ops/backend.h"

namespace unicorn::test {

bool cuda_present();
// The backend for `device` ("cpu" with 2 threads, "reference", "cuda": products of 16+ rows
// on tensor cores in bf16; "cuda-f32": every product in f32), or nullptr when it is a GPU
// this machine lacks (the caller skips). Fails the test if UNICORN_REQUIRE_CUDA is set and no
// GPU is found.
std::unique_ptr<Backend> backend_or_skip(const std::string& device);

// Sets an environment variable for the scope (restoring the old value after).
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  bool had_ = false;
  std::string old_;
};

}  // namespace unicorn::test
