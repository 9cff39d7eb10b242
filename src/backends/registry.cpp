#include "backends/registry.h"

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "core/error.h"
#include "ops/reference_backend.h"

namespace unicorn {

std::vector<std::string> available_backends() {
  std::vector<std::string> names = {"cpu", "reference"};
  for (const CudaDeviceInfo& d : cuda_devices()) names.push_back("cuda:" + std::to_string(d.index));
  return names;
}

std::optional<int> cuda_device_index(const std::string& device) {
  if (device == "cuda") return 0;
  if (!device.starts_with("cuda:")) return std::nullopt;
  const std::string n = device.substr(5);
  if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
    fail("bad device '{}': expected cuda or cuda:N with N a GPU index", device);
  return std::stoi(n);
}

std::unique_ptr<Backend> create_backend(const std::string& device, const BackendOptions& options) {
  if (device == "cpu") return std::make_unique<CpuBackend>(options.threads);
  if (device == "reference") return std::make_unique<ReferenceBackend>();
  if (const auto gpu = cuda_device_index(device)) return create_cuda_backend(*gpu);
  std::string names;
  for (const auto& n : available_backends()) names += (names.empty() ? "" : ", ") + n;
  fail("unknown device '{}' (this build has: {})", device, names);
}

}  // namespace unicorn
