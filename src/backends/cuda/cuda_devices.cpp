// The CUDA backend's entry points that describe the machine: the GPUs the driver sees, which
// path products of many rows take, the measured copy bandwidth (cuda_backend.h).
#ifdef UNICORN_HAVE_CUDA

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cstdlib>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_blas.h"
#include "backends/cuda/cuda_support.h"
#include "core/error.h"

namespace unicorn {

bool cuda_built() { return true; }

std::vector<CudaDeviceInfo> cuda_devices(std::string* why) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = fmt::format("no usable CUDA driver or GPU ({})", cudaGetErrorString(e));
    return {};
  }
  if (count == 0 && why) *why = "no CUDA GPU found";
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    CudaDeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.total_memory = int64_t(p.totalGlobalMem);
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    d.multiprocessors = p.multiProcessorCount;
    d.memory_bus_bits = p.memoryBusWidth;
    int clock = 0;
    if (cudaDeviceGetAttribute(&clock, cudaDevAttrMemoryClockRate, i) == cudaSuccess) d.memory_clock_khz = clock;
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cuda::forget_current_device();  // set below
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      d.free_memory = int64_t(free_b);
    cudaGetLastError();
    out.push_back(d);
  }
  return out;
}

std::string cuda_gemm_status() {
  const char* mode = std::getenv("UNICORN_CUDA_GEMM");
  if (mode && std::string(mode) == "f32") return "f32 kernels (UNICORN_CUDA_GEMM=f32)";
  const std::string why = cuda::Blas::unavailable_reason();
  return why.empty() ? "cuBLAS on tensor cores from 16 rows (bf16 inputs; attention TF32); decode over Q4_0 / "
                       "Q8_0 / Q6_K / Q4_K / NF4 with int8 activations"
                     : "f32 kernels: " + why;
}

double cuda_copy_bandwidth_gbs(int index) {
  cuda::use_device(index);
  const size_t bytes = size_t(1) << 30;
  void *a = nullptr, *b = nullptr;
  UNICORN_CUDA_CHECK(cudaMalloc(&a, bytes));
  UNICORN_CUDA_CHECK(cudaMalloc(&b, bytes));
  cudaEvent_t start, stop;
  UNICORN_CUDA_CHECK(cudaEventCreate(&start));
  UNICORN_CUDA_CHECK(cudaEventCreate(&stop));
  UNICORN_CUDA_CHECK(cudaMemset(a, 1, bytes));
  UNICORN_CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));  // warm-up
  const int reps = 5;
  UNICORN_CUDA_CHECK(cudaEventRecord(start));
  for (int i = 0; i < reps; ++i) UNICORN_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  UNICORN_CUDA_CHECK(cudaEventRecord(stop));
  UNICORN_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0;
  UNICORN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) * reps / (double(ms) * 1e-3) / 1e9;
}

int64_t cuda_memory_in_use(int index, int64_t* total, int64_t* pool_peak) {
  cuda::use_device(index);
  size_t free_b = 0, total_b = 0;
  UNICORN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  if (total) *total = int64_t(total_b);
  if (pool_peak) {
    cudaMemPool_t pool;
    uint64_t high = 0;
    UNICORN_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, index));
    UNICORN_CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high));
    *pool_peak = int64_t(high);
  }
  return int64_t(total_b - free_b);
}

std::shared_ptr<void> cuda_limit_memory(int index, int64_t limit) {
  cuda::use_device(index);
  size_t free_b = 0, total_b = 0;
  UNICORN_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const int64_t used = int64_t(total_b - free_b);
  if (used > limit)
    fail("cuda:{}: {:.2f} GiB already in use, more than the limit of {:.2f} GiB", index, double(used) / (1 << 30),
         double(limit) / (1 << 30));
  const int64_t ballast = int64_t(free_b) - (limit - used);
  if (ballast <= 0) return nullptr;
  void* p = nullptr;
  UNICORN_CUDA_CHECK(cudaMalloc(&p, size_t(ballast)));
  return std::shared_ptr<void>(p, [index](void* q) {
    cuda::set_device_quietly(index);
    cudaFree(q);
  });
}

}  // namespace unicorn

#endif  // UNICORN_HAVE_CUDA
