// The CUDA backend's entry points in a build without CUDA (CMake found no nvcc, or
// UNICORN_CUDA=OFF): no devices, and a clear error for anyone asking for one.
#ifndef UNICORN_HAVE_CUDA

#include "backends/cuda/cuda_backend.h"
#include "core/error.h"

namespace unicorn {

bool cuda_built() { return false; }

std::vector<CudaDeviceInfo> cuda_devices(std::string* why) {
  if (why) *why = "this build has no CUDA backend (CMake found no nvcc; see README)";
  return {};
}

double cuda_copy_bandwidth_gbs(int) { return 0.0; }
std::shared_ptr<void> cuda_limit_memory(int index, int64_t) {
  fail("device 'cuda:{}': this build has no CUDA backend", index);
}
int64_t cuda_memory_in_use(int, int64_t* total, int64_t* pool_peak) {
  if (total) *total = 0;
  if (pool_peak) *pool_peak = 0;
  return 0;
}
std::string cuda_gemm_status() { return "no CUDA backend"; }

std::unique_ptr<Backend> create_cuda_backend(int index) {
  fail("device 'cuda:{}': this build has no CUDA backend (rebuild where nvcc is installed, "
       "/usr/local/cuda/bin/nvcc or on PATH)",
       index);
}

}  // namespace unicorn

#endif  // UNICORN_HAVE_CUDA
