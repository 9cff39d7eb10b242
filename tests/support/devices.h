// Backends for tests that run on every device: the CPU always; CUDA where a GPU is present.
// On the GPU machine set UNICORN_REQUIRE_CUDA=1 so a missing GPU fails instead of skipping.
#pragma once

#include <memory>
#include <string>

#include "ops/backend.h"

namespace unicorn::test {

bool cuda_present();
// The backend for `device` ("cpu" with 2 threads, "cuda", "reference"), or nullptr when it is
// a GPU this machine lacks (the caller skips). Fails the test if UNICORN_REQUIRE_CUDA is set
// and no GPU is found.
std::unique_ptr<Backend> backend_or_skip(const std::string& device);

}  // namespace unicorn::test
