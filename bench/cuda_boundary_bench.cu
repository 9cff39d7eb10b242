// What a kernel boundary costs in a chain shaped like 27B decode's: products of one block of 512
// threads a multiprocessor (one a multiprocessor: `--smem` KiB of shared memory each) taking
// turns with one-block kernels (the residual norms), each kernel reading what the one before it
// wrote. Kernels are recorded into one CUDA graph of 1000 and timed as it replays; every chain
// is run three ways:
//   pdl    programmatic dependent launch (the engine's way): each kernel lets the next one start
//          at once and waits in `griddepcontrol.wait` for the one before it
//   flags  the same launches, but each block waits on a count in global memory that the blocks
//          of the kernel before it raise when done (no griddepcontrol.wait)
//   plain  stream order, no programmatic launch
// and then as one resident (cooperative) kernel whose blocks meet at a grid barrier where a
// product would end and wait on a flag for block 0's one-block phase where a norm would: what a
// persistent layer kernel would pay instead of the boundaries.
// `--work N` gives each product block N steps of arithmetic before its wait (work a product does
// before its inputs come: pdl hides it, plain does not).
// Usage: unicorn_cuda_boundary_bench [--smem KiB] [--work N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cuda_runtime.h>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); return 1; } } while (0)

namespace {

constexpr int kKernels = 1000;  // a graph's kernels: products and one-block kernels in turn

__device__ __forceinline__ unsigned load_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

__device__ __forceinline__ float busy(int steps) {
  float acc = 0.0f;
  for (int k = 0; k < steps; ++k) acc += __sinf(acc + float(k));
  return acc;
}

enum Sync { kPdl = 0, kFlags = 1, kPlain = 2 };

// Kernel i of the chain. counts[i]: blocks of kernel i done (flags; `need` the count kernel
// i - 1 reaches in this replay, counts growing across replays).
__global__ void __launch_bounds__(512, 1) chain_kernel(int sync, float* data, unsigned* counts, int i, unsigned need,
                                                       int work) {
  if (sync != kPlain) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  float acc = busy(work);
  if (sync == kPdl) asm volatile("griddepcontrol.wait;" ::: "memory");
  if (sync == kFlags && i > 0) {
    if (threadIdx.x == 0)
      while (load_acquire(counts + i - 1) < need) {
      }
    __syncthreads();
  }
  const float v = i > 0 ? __ldcg(data + i - 1) : 0.0f;
  __syncthreads();
  if (blockIdx.x == 0 && threadIdx.x == 0) data[i] = v + 1.0f + (acc == 1234.5f ? 1.0f : 0.0f);
  if (sync == kFlags) {
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      atomicAdd(counts + i, 1u);
    }
  }
}

// The same chain as one resident kernel: `rounds` of (every block's product phase, a grid
// barrier, block 0's one-block phase, a flag the others wait on).
__global__ void __launch_bounds__(512, 1) resident_kernel(float* data, unsigned* barrier, unsigned* flag, int rounds,
                                                          int work) {
  float acc = 0.0f;
  for (int r = 0; r < rounds; ++r) {
    acc += busy(work) + __ldcg(data + 2 * r);  // the product phase reads the last phase's value
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      atomicAdd(barrier, 1u);
      while (load_acquire(barrier) < unsigned(r + 1) * gridDim.x) {
      }
    }
    __syncthreads();
    if (blockIdx.x == 0) {  // the one-block phase
      if (threadIdx.x == 0) {
        data[2 * r + 1] = __ldcg(data + 2 * r) + 1.0f + (acc == 1234.5f ? 1.0f : 0.0f);
        data[2 * r + 2] = data[2 * r + 1] + 1.0f;
        __threadfence();
        asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(flag), "r"(unsigned(r + 1)) : "memory");
      }
    } else if (threadIdx.x == 0) {
      while (load_acquire(flag) < unsigned(r + 1)) {
      }
    }
    __syncthreads();
  }
}

// Milliseconds `run` takes on stream s.
float time_on(cudaStream_t s, const auto& run) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a, s);
  run();
  cudaEventRecord(b, s);
  cudaEventSynchronize(b);
  float ms = 0.0f;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int smem_kib = 120, work = 0;
  for (int a = 1; a < argc; a += 2) {
    if (a + 1 == argc) return printf("%s: a value is missing\nusage: %s [--smem KiB] [--work N]\n", argv[a], argv[0]), 2;
    if (!std::strcmp(argv[a], "--smem")) smem_kib = std::atoi(argv[a + 1]);
    else if (!std::strcmp(argv[a], "--work")) work = std::atoi(argv[a + 1]);
    else return printf("usage: %s [--smem KiB] [--work N]\n", argv[0]), 2;
  }
  if (smem_kib < 1 || smem_kib > 227) return printf("--smem: 1 to 227 KiB\n"), 2;
  int sms = 0, dev = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  printf("%s, %d multiprocessors; products: %d blocks of 512 threads, %d KiB shared memory each; pre-wait work %d\n",
         prop.name, sms, sms, smem_kib, work);
  const size_t smem = size_t(smem_kib) * 1024;
  CK(cudaFuncSetAttribute(chain_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024));
  CK(cudaFuncSetAttribute(resident_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  float* data;
  unsigned* counts;
  CK(cudaMalloc(&data, (kKernels + 2) * sizeof(float)));
  CK(cudaMalloc(&counts, (kKernels + 2) * sizeof(unsigned)));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));

  for (int sync : {kPdl, kFlags, kPlain}) {
    CK(cudaMemset(counts, 0, (kKernels + 2) * sizeof(unsigned)));
    // A graph a replay (the flags' targets grow by a replay's counts), its launch timed.
    float best = 1e30f;
    for (int replay = 0; replay < 4; ++replay) {
      cudaGraph_t g;
      cudaGraphExec_t ge;
      CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      for (int i = 0; i < kKernels; ++i) {
        const bool product = i % 2 == 0;
        cudaLaunchConfig_t c = {};
        c.gridDim = dim3(product ? unsigned(sms) : 1u);
        c.blockDim = dim3(product ? 512u : 256u);
        // (the one-block kernel takes the rest of a multiprocessor's shared memory, so that it
        // never sits beside a product block: in decode the products' registers see to that)
        c.dynamicSmemBytes = product ? smem : size_t(std::min(227, 229 - smem_kib)) * 1024;
        c.stream = s;
        cudaLaunchAttribute attr;
        attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr.val.programmaticStreamSerializationAllowed = 1;
        c.attrs = &attr;
        c.numAttrs = sync == kPlain ? 0 : 1;
        const unsigned before = (i - 1) % 2 == 0 ? unsigned(sms) : 1u;
        CK(cudaLaunchKernelEx(&c, chain_kernel, sync, data, counts, i, before * unsigned(replay + 1),
                              product ? work : 0));
      }
      CK(cudaStreamEndCapture(s, &g));
      CK(cudaGraphInstantiate(&ge, g, 0));
      const float ms = time_on(s, [&] { cudaGraphLaunch(ge, s); });
      if (replay > 0 && ms < best) best = ms;
      CK(cudaGraphExecDestroy(ge));
      CK(cudaGraphDestroy(g));
    }
    float last = 0.0f;
    CK(cudaMemcpy(&last, data + kKernels - 1, sizeof last, cudaMemcpyDeviceToHost));
    printf("chain, %-5s: %.3f us a kernel (%d kernels; last value %.0f, want %d)\n",
           sync == kPdl ? "pdl" : sync == kFlags ? "flags" : "plain", best * 1000.0f / kKernels, kKernels, last,
           kKernels);
  }

  // The resident kernel: one block a multiprocessor, all at once (cooperative launch).
  unsigned* barrier = counts;
  unsigned* flag = counts + 1;
  const int rounds = kKernels / 2;
  float best = 1e30f;
  for (int rep = 0; rep < 4; ++rep) {
    CK(cudaMemsetAsync(counts, 0, 2 * sizeof(unsigned), s));
    CK(cudaMemsetAsync(data, 0, (kKernels + 2) * sizeof(float), s));
    const float ms = time_on(s, [&] {
      cudaLaunchConfig_t c = {};
      c.gridDim = dim3(unsigned(sms));
      c.blockDim = dim3(512u);
      c.dynamicSmemBytes = smem;
      c.stream = s;
      cudaLaunchAttribute attr;
      attr.id = cudaLaunchAttributeCooperative;
      attr.val.cooperative = 1;
      c.attrs = &attr;
      c.numAttrs = 1;
      cudaLaunchKernelEx(&c, resident_kernel, data, barrier, flag, rounds, work);
    });
    CK(cudaGetLastError());
    if (rep > 0 && ms < best) best = ms;
  }
  float last = 0.0f;
  CK(cudaMemcpy(&last, data + kKernels, sizeof last, cudaMemcpyDeviceToHost));
  printf("resident (grid barrier + flag): %.3f us a phase (%d phases; last value %.0f, want %d)\n",
         best * 1000.0f / kKernels, kKernels, last, kKernels);
  return 0;
}
