// The CUDA backend: the whole model on one NVIDIA GPU (built when CMake finds nvcc; see
// CMakeLists.txt). This header is plain C++ so every part of the engine can include it; the
// kernels live in the .cu files beside it. Without CUDA in the build, cuda_unavailable.cpp
// provides these functions: no devices, and a clear error for "cuda".
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/backend.h"

namespace unicorn {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int64_t total_memory = 0;  // bytes
  int64_t free_memory = 0;   // bytes, when listed
  int cc_major = 0, cc_minor = 0;
  int multiprocessors = 0;
  int memory_bus_bits = 0;
  int memory_clock_khz = 0;
  // Theoretical DRAM bandwidth from the bus width and memory clock (GB/s), 0 where unknown.
  double peak_bandwidth_gbs() const { return 2.0 * memory_clock_khz * 1e3 * (memory_bus_bits / 8.0) / 1e9; }
};

// Whether this build has the CUDA backend.
bool cuda_built();
// The CUDA GPUs the driver sees; empty where there are none (or no CUDA in the build), with
// the reason in *why when given ("built without CUDA", "no CUDA driver", ...).
std::vector<CudaDeviceInfo> cuda_devices(std::string* why = nullptr);
// How products of many rows run: "cuBLAS (tensor cores, bf16 inputs)" or the reason they
// fall back to the f32 kernels.
std::string cuda_gemm_status();
// Measured DRAM throughput of GPU `index`: a device-to-device copy of 1 GiB, bytes read +
// written per second (GB/s). 0 without CUDA.
double cuda_copy_bandwidth_gbs(int index);
// Bytes of GPU `index`'s memory in use (by every process: total - free, cudaMemGetInfo), its
// total in *total, and in *pool_peak the most this process ever had allocated at once from the
// stream-ordered pool (activations, KV caches, scratch; weights are outside it). 0 without CUDA.
int64_t cuda_memory_in_use(int index, int64_t* total, int64_t* pool_peak = nullptr);
// Emulates a smaller card: allocates (and holds until the handle goes) all of GPU `index`'s
// free memory but what keeps the device's total use at `limit` bytes. Error if more than that
// is in use already.
std::shared_ptr<void> cuda_limit_memory(int index, int64_t limit);
// The backend on GPU `index`; throws Error if it does not exist.
std::unique_ptr<Backend> create_cuda_backend(int index);

}  // namespace unicorn
