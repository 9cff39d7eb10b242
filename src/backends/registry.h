// Backends by name: "cpu" (always), "reference" (the scalar definition, slow), and
// accelerators where built ("cuda", "cuda:1", ...).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ops/backend.h"

namespace unicorn {

struct BackendOptions {
  int threads = 0;  // CPU threads; 0: one per core
};

// Throws Error naming the device and the available ones if it cannot be created.
std::unique_ptr<Backend> create_backend(const std::string& device, const BackendOptions& options = {});
std::vector<std::string> available_backends();
// The GPU index of "cuda" (0) or "cuda:N"; nullopt for other devices; Error for a malformed
// "cuda:..." name.
std::optional<int> cuda_device_index(const std::string& device);

}  // namespace unicorn
