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
  return create_backend(device, {2});
}

}  // namespace unicorn::test
