#include "backends/registry.h"

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "ops/reference_backend.h"

namespace unicorn {

std::vector<std::string> available_backends() { return {"cpu", "reference"}; }

std::unique_ptr<Backend> create_backend(const std::string& device, const BackendOptions& options) {
  if (device == "cpu") return std::make_unique<CpuBackend>(options.threads);
  if (device == "reference") return std::make_unique<ReferenceBackend>();
  std::string names;
  for (const auto& n : available_backends()) names += (names.empty() ? "" : ", ") + n;
  fail("unknown device '{}' (this build has: {})", device, names);
}

}  // namespace unicorn
