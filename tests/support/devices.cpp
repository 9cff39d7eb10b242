#include "support/devices.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "backends/cuda/cuda_backend.h"
#include "backends/registry.h"

namespace unicorn::test {

bool cuda_present() {
  static const bool present = !cuda_devices().empty();
  return present;
}

std::unique_ptr<Backend> backend_or_skip(const std::string& device) {
  if (device.starts_with("cuda") && !cuda_present()) {
    const char* require = std::getenv("UNICORN_REQUIRE_CUDA");
    std::string why;
    cuda_devices(&why);
    if (require && *require && std::string(require) != "0") ADD_FAILURE() << "UNICORN_REQUIRE_CUDA is set but: " << why;
    return nullptr;
  }
  if (device == "cuda-f32") {
    ScopedEnv f32("UNICORN_CUDA_GEMM", "f32");
    return create_backend("cuda", {2});
  }
  return create_backend(device, {2});
}

ScopedEnv::ScopedEnv(std::string name, const char* value) : name_(std::move(name)) {
  if (const char* old = std::getenv(name_.c_str())) {
    had_ = true;
    old_ = old;
  }
  if (value)
    setenv(name_.c_str(), value, 1);
  else
    unsetenv(name_.c_str());
}

ScopedEnv::~ScopedEnv() {
  if (had_)
    setenv(name_.c_str(), old_.c_str(), 1);
  else
    unsetenv(name_.c_str());
}

}  // namespace unicorn::test
