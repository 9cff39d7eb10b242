// How fast this GPU reads memory in the access patterns the decode kernels use, against the
// device-to-device copy that `unicorn bench` takes for the weight-read floor (bytes read +
// written). Usage: unicorn_cuda_read_bench [MiB]   (default 1160: the 27B LM head's Q6_K bytes)
// Patterns (each with 1-4 blocks of 256-1024 threads a multiprocessor, U 16-byte loads a thread
// in flight): "grid" strides the whole buffer (consecutive threads, consecutive 16 bytes);
// "warp" gives each warp its own contiguous run, two steps of U x 512 bytes in flight (as the
// streamed products); "block" gives each block a run its warps interleave. First, Q4_0-shaped
// runs (16 warps a multiprocessor, the streamed products' step sizes U and matrix counts M):
// "planes", codes and scales in separate planes (the engine's layout), "groups", 32 blocks'
// codes then their scales in one run; "+8": each warp's run starts 8 blocks into a group (as
// rows of 168 blocks do).
// Measured on an H200 (bench/RESULTS.md): the copy 4277 GB/s, reads 4.3-4.58 TB/s from 512
// threads a multiprocessor; Q4_0-shaped runs 4.2-4.56 TB/s, groups 3.5% ahead of planes for
// gate / up's shape when aligned, 1.2% when not (the engine in groups was no faster: RESULTS).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <cuda_runtime.h>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("%s: %s\n", #x, cudaGetErrorString(e)); return 1; } } while (0)

__device__ __forceinline__ uint4 ldnc(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
}

// Grid-stride: consecutive threads consecutive 16 B, U loads a thread in flight.
template <int U>
__global__ void grid_stride(const uint4* p, size_t n, unsigned* out) {
  unsigned acc = 0;
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride * U) {
    uint4 v[U];
#pragma unroll
    for (int u = 0; u < U; ++u) v[u] = (i + u * stride < n) ? ldnc(p + i + u * stride) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
  }
  if (acc == 0x12345678) out[0] = acc;
}

// Per-warp runs: the buffer split into one contiguous run a warp; a warp step reads U x 512 B
// (lane l: 16 B at l + 32 u), two steps in flight (as the streamed products).
template <int U>
__global__ void warp_runs(const uint4* p, size_t n, unsigned* out) {
  const int lane = threadIdx.x & 31;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  const size_t w = size_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  const size_t per = (n / warps) / (32 * U) * (32 * U);
  const uint4* q = p + w * per;
  unsigned acc = 0;
  uint4 a[U], b[U];
  size_t s = 0;
#pragma unroll
  for (int u = 0; u < U; ++u) a[u] = ldnc(q + lane + 32 * u);
  for (; s + 32 * U < per; s += 64 * U) {
#pragma unroll
    for (int u = 0; u < U; ++u) b[u] = ldnc(q + s + 32 * U + lane + 32 * u);
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= a[u].x ^ a[u].y ^ a[u].z ^ a[u].w;
    if (s + 64 * U < per) {
#pragma unroll
      for (int u = 0; u < U; ++u) a[u] = ldnc(q + s + 64 * U + lane + 32 * u);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= b[u].x ^ b[u].y ^ b[u].z ^ b[u].w;
  }
  if (acc == 0x12345678) out[0] = acc;
}

// Block-interleaved: a block's warps read consecutive 512 B x U pieces of one block run.
template <int U>
__global__ void block_runs(const uint4* p, size_t n, unsigned* out) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, W = blockDim.x / 32;
  const size_t per = (n / gridDim.x) / (32 * U * W) * (32 * U * W);
  const uint4* q = p + size_t(blockIdx.x) * per;
  unsigned acc = 0;
  for (size_t s = size_t(warp) * 32 * U; s < per; s += size_t(W) * 32 * U * 2) {
    uint4 a[U], b[U];
#pragma unroll
    for (int u = 0; u < U; ++u) a[u] = ldnc(q + s + lane + 32 * u);
    const size_t s2 = s + size_t(W) * 32 * U;
#pragma unroll
    for (int u = 0; u < U; ++u) b[u] = s2 < per ? ldnc(q + s2 + lane + 32 * u) : make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int u = 0; u < U; ++u) acc ^= a[u].x ^ a[u].y ^ a[u].z ^ a[u].w ^ b[u].x ^ b[u].y ^ b[u].z ^ b[u].w;
  }
  if (acc == 0x12345678) out[0] = acc;
}

// Q4_0-shaped runs: each warp its own run of 32-value blocks of M matrices, a block 16 bytes of
// codes and a 2-byte scale, two steps of U blocks a lane in flight (as the streamed products).
// G = false: codes and scales in separate planes (the engine's layout); G = true: groups of 32
// blocks, their 512 bytes of codes then their 64 bytes of scales (one run of memory). O: each
// warp's run starts O blocks past a group's start.
__device__ __forceinline__ unsigned short ldnc(const unsigned short* p) {
  unsigned short v;
  asm volatile("ld.global.nc.L1::no_allocate.u16 %0, [%1];" : "=h"(v) : "l"(p));
  return v;
}
template <int U, int M, bool G>
struct Q4Step {
  uint4 q[M][U];
  unsigned short d[M][U];
  __device__ void load(const unsigned char* base, size_t matrix_bytes, size_t units, size_t at, int lane) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const size_t i = at + size_t(32 * u) + lane;
        const unsigned char* mb = base + m * matrix_bytes;
        if (G) {
          const size_t g = i / 32;
          q[m][u] = ldnc(reinterpret_cast<const uint4*>(mb + g * 576) + lane);
          d[m][u] = ldnc(reinterpret_cast<const unsigned short*>(mb + g * 576 + 512) + lane);
        } else {
          q[m][u] = ldnc(reinterpret_cast<const uint4*>(mb) + i);
          d[m][u] = ldnc(reinterpret_cast<const unsigned short*>(mb + units * 16) + i);
        }
      }
    }
  }
  __device__ unsigned fold() const {
    unsigned acc = 0;
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int u = 0; u < U; ++u) acc ^= q[m][u].x ^ q[m][u].y ^ q[m][u].z ^ q[m][u].w ^ d[m][u];
    }
    return acc;
  }
};
// One q4_runs shape, as a value (the host loop's tag).
template <int U, int M, bool G, int O = 0>
struct Q4Shape {};
template <int U, int M, bool G, int O = 0>
__global__ void q4_runs(const unsigned char* p, size_t units, unsigned* out) {
  const int lane = threadIdx.x & 31;
  const size_t warps = size_t(gridDim.x) * (blockDim.x / 32);
  const size_t w = size_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  const size_t per = (units / warps) / (32 * U) * (32 * U);
  const size_t first = w * per + O, matrix_bytes = units * 18;
  unsigned acc = 0;
  Q4Step<U, M, G> a, b;
  a.load(p, matrix_bytes, units, first, lane);
  for (size_t s = 0; s + 32 * U < per; s += 64 * U) {
    b.load(p, matrix_bytes, units, first + s + 32 * U, lane);
    acc ^= a.fold();
    if (s + 64 * U < per) a.load(p, matrix_bytes, units, first + s + 64 * U, lane);
    acc ^= b.fold();
  }
  if (acc == 0x12345678) out[0] = acc;
}

template <typename F>
float timeit(F f, int reps = 10) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  f();
  cudaDeviceSynchronize();
  cudaEventRecord(a);
  for (int i = 0; i < reps; ++i) f();
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms;
  cudaEventElapsedTime(&ms, a, b);
  return ms / reps;
}

int main(int argc, char** argv) {
  const long mib = argc > 1 ? std::atol(argv[1]) : 1160;
  if (mib < 1 || mib > (1L << 20)) {
    std::fprintf(stderr, "usage: unicorn_cuda_read_bench [MiB: 1 to 1048576, default 1160]\n");
    return 2;
  }
  const size_t bytes = size_t(mib) << 20;
  const size_t n = bytes / 16;
  uint4 *p, *q;
  unsigned* out;
  CK(cudaMalloc(&p, bytes));
  CK(cudaMalloc(&q, bytes));
  CK(cudaMalloc(&out, 64));
  CK(cudaMemset(p, 1, bytes));
  int sms;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  printf("%s, %d multiprocessors, %ld MiB\n", prop.name, sms, mib);
  float ms = timeit([&] { cudaMemcpyAsync(q, p, bytes, cudaMemcpyDeviceToDevice); });
  printf("memcpy D2D: %.1f us, %.0f GB/s (read+write)\n", ms * 1e3, 2.0 * bytes / (ms * 1e-3) / 1e9);
  // GB/s of the bytes a pattern reads: whole steps only for the runs (a warp's or a block's),
  // so they may leave the buffer's last few KiB a run unread.
  auto report = [&](const char* name, int bpsm, int threads, size_t read, float ms) {
    printf("%-12s %d x %4d threads/SM: %7.1f us  %5.0f GB/s read\n", name, bpsm, threads, ms * 1e3,
           double(read) / (ms * 1e-3) / 1e9);
  };
  // Q4_0-shaped runs, 16 warps a multiprocessor: M matrices of `units` blocks each, at the step
  // sizes U the products take (27B: o 4, q/k/v 6, down 7, gate / up 3 with M = 2).
  const unsigned g = unsigned(sms);
  const auto* bp = reinterpret_cast<const unsigned char*>(p);
  auto q4 = [&]<int U, int M, bool G, int O>(Q4Shape<U, M, G, O>) {
    const size_t units = bytes / 18 / size_t(M) / 32 * 32 - 64;  // (room for runs started off a group)
    const size_t warps = size_t(g) * 16;
    const size_t read = warps * ((units / warps) / (32 * size_t(U)) * (32 * size_t(U))) * 18 * size_t(M);
    char name[32];
    std::snprintf(name, sizeof name, "%s%s%.0d M=%d U=%d", G ? "groups" : "planes", O ? "+" : "", O, M, U);
    report(name, 1, 512, read, timeit([&] { q4_runs<U, M, G, O><<<g, 512>>>(bp, units, out); }));
  };
  for (int rep = 0; rep < 2; ++rep) {
    q4(Q4Shape<3, 1, false>{});
    q4(Q4Shape<3, 1, true>{});
    q4(Q4Shape<4, 1, false>{});
    q4(Q4Shape<4, 1, true>{});
    q4(Q4Shape<6, 1, false>{});
    q4(Q4Shape<6, 1, true>{});
    q4(Q4Shape<7, 1, false>{});
    q4(Q4Shape<7, 1, true>{});
    q4(Q4Shape<3, 2, false>{});
    q4(Q4Shape<3, 2, true>{});
    q4(Q4Shape<3, 2, true, 8>{});
    q4(Q4Shape<6, 1, true, 8>{});
    q4(Q4Shape<7, 1, true, 8>{});
    q4(Q4Shape<3, 2, false, 8>{});
    q4(Q4Shape<6, 1, false, 8>{});
    report("warp U=4", 1, 512, bytes, timeit([&] { warp_runs<4><<<g, 512>>>(p, n, out); }));
  }
  CK(cudaGetLastError());
  for (int bpsm : {1, 2, 4}) {
    for (int threads : {256, 512, 1024}) {
      if (bpsm * threads > 2048) continue;
      const unsigned g = unsigned(sms * bpsm);
      const size_t warps = size_t(g) * size_t(threads / 32);
      auto warp_bytes = [&](size_t u) { return warps * ((n / warps) / (32 * u) * (32 * u)) * 16; };
      auto block_bytes = [&](size_t u) {
        const size_t step = 32 * u * size_t(threads / 32);
        return size_t(g) * ((n / g) / step * step) * 16;
      };
      report("grid U=2", bpsm, threads, bytes, timeit([&] { grid_stride<2><<<g, threads>>>(p, n, out); }));
      report("grid U=4", bpsm, threads, bytes, timeit([&] { grid_stride<4><<<g, threads>>>(p, n, out); }));
      report("warp U=2", bpsm, threads, warp_bytes(2), timeit([&] { warp_runs<2><<<g, threads>>>(p, n, out); }));
      report("warp U=4", bpsm, threads, warp_bytes(4), timeit([&] { warp_runs<4><<<g, threads>>>(p, n, out); }));
      report("warp U=6", bpsm, threads, warp_bytes(6), timeit([&] { warp_runs<6><<<g, threads>>>(p, n, out); }));
      report("block U=2", bpsm, threads, block_bytes(2), timeit([&] { block_runs<2><<<g, threads>>>(p, n, out); }));
      report("block U=4", bpsm, threads, block_bytes(4), timeit([&] { block_runs<4><<<g, threads>>>(p, n, out); }));
    }
  }
  CK(cudaGetLastError());
  cudaFree(p);
  cudaFree(q);
  cudaFree(out);
  return 0;
}
