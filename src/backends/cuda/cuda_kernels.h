// Host-side view of the CUDA backend's kernels (cuda_linear.cu, cuda_attention.cu,
// cuda_elementwise.cu): weight layouts, error checks and launchers. Plain C++ (nvcc compiles
// the kernels; g++ the backend, cuda_backend.cpp). Pointers are device memory; every launcher
// queues on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <span>
#include <vector>

#include "backends/cuda/cuda_layout.h"

namespace unicorn::cuda {

// The kernel trace (cuda_common.cuh): device buffers for `cap` events of each kind (0: a
// kernel's start, 1: its input wait done, each as (time in ns, grid blocks | threads << 32),
// from block 0; 2: a streamed product block's input wait done, 3: its end, each as (time,
// block | grid blocks << 32), from every block; 4: a streamed product warp's end, as (time,
// block | warp << 20 | grid blocks << 32)).
constexpr int kTraceKinds = 5;
struct TraceSlots {
  unsigned long long* buf = nullptr;  // [kTraceKinds][cap][2]
  unsigned int* n = nullptr;          // [kTraceKinds]: events recorded (may pass cap)
  unsigned int cap = 0;
};
using TraceSetter = void (*)(const TraceSlots&);
std::vector<TraceSetter>& trace_setters();  // one a .cu file: sets its copy of the slots
// With UNICORN_CUDA_TRACE=FILE: trace_start (a backend's creation) allocates the slots
// (UNICORN_CUDA_TRACE_EVENTS of each kind, default 4M), trace_dump (its end) writes "kind time
// A B" lines to FILE (A, B: the second word's low and high halves); trace_tick queues an
// empty traced kernel (marks where the work before it ends).
void trace_start();
void trace_dump();
bool trace_on();
void trace_tick(cudaStream_t stream);

void check(cudaError_t e, const char* what, const char* file, int line);
#define UNICORN_CUDA_CHECK(x) ::unicorn::cuda::check((x), #x, __FILE__, __LINE__)
// After a kernel launch: a bad configuration is an Error here, not a later mystery.
#define UNICORN_CUDA_LAUNCHED() ::unicorn::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// Programmatic dependent launch (Hopper and later): the decode path's kernels are launched so
// that the next one's blocks start while this one's last blocks finish; each waits for its
// inputs (griddepcontrol.wait) before it reads what the kernel before wrote, and may load its
// weights before that. Each backend says whether its GPU allows it (and UNICORN_CUDA_PDL=0
// says no); it is on while every one said yes. Off, the same kernels launch as plain stream work.
void allow_dependent_launches(bool allowed);
bool dependent_launches();

// Weight formats as they sit on the GPU (prepare_weight makes them from the host layouts):
//   F32, F16, BF16: plain rows.
//   Q4_0: codes then scales: qs [rows * blocks][16 bytes], d [rows * blocks] f16. Split from
//         ggml's 18-byte blocks so a lane's 16 bytes are one aligned 128-bit load.
//   Q8_0: qs [rows * blocks][32] int8, then d [rows * blocks] f16.
//   Q4_K: ggml's 144-byte super-blocks unchanged.
//   Q6_K: ggml's 210-byte super-blocks split for aligned loads: ql (128 bytes a block), then
//         qh (64 bytes a block, p1), scales [blocks][16] int8 (p2), d [blocks] f16 (p3). ql and
//         qh go in 16-byte pieces interleaved over groups of 32 half blocks (q6k_piece), so
//         that 32 lanes each reading piece p of their own half block read 512 contiguous bytes;
//         both are padded to whole groups.
//   NF4: codes [rows * cols / 2] (first value in the high nibble), as bitsandbytes stores them:
//        with double quantization, qabsmax [blocks] uint8 (p1) and nested_absmax
//        [blocks / nf4_nested] f32 (p2), absmax = code[qabsmax] * nested_absmax + offset;
//        without, absmax [blocks] f32 (p1) and p2 null. `levels`: the 16 levels, then the 256
//        nested code values, then the offset (f32).
enum class WFmt : int { F32, F16, BF16, Q4_0, Q8_0, Q4_K, Q6_K, NF4 };

struct WeightView {
  const uint8_t* p0 = nullptr;  // values / codes / blocks
  const uint8_t* p1 = nullptr;  // scales (Q4_0, Q8_0), absmax (NF4)
  const uint8_t* p2 = nullptr;  // Q6_K scales
  const uint8_t* p3 = nullptr;  // Q6_K d
  const float* levels = nullptr;  // NF4
  int64_t rows = 0, cols = 0;
  int64_t nf4_block = 64;   // NF4: values per absmax
  int64_t nf4_nested = 256;  // NF4: absmax blocks per nested_absmax
};

// One row of x against Q4_0 / Q8_0 / Q6_K / Q4_K / NF4 weights (gate_up_stream: all but Q6_K),
// streamed (cuda_matvec.cu): the rows of `parts` (1-3; NF4: 1) matrices of one width as one
// launch (q, k and v), or gate and up with GELU(gate) * up out; x quantized to int8 as linear's
// int8_x, NF4's levels to int8 (nf4_int8_level). False (nothing launched) for other formats,
// rows wider than the kernel's shared memory holds, Q4_K rows not of whole super-blocks, NF4
// rows not of whole 64-value units or blocks not a power of two of them (then linear,
// linear3_int8, gate_up_int8, or the ops one by one).
// grid: the rows spread over one block of 16 warps a multiprocessor, or two of 8.
struct StreamGrid {
  int multiprocessors;
  int warps;  // a block: 16 or 8
};
// column_parts > 1 (parts 1, Q4_0 / Q8_0, cols a multiple of 32 column_parts): each block's rows
// shared by column_parts blocks, each over as many of the columns (and of x: fewer of x's codes
// a block makes before its products start), their sums to y[0] + p w.rows (part p; the bias
// with part 0): residual_rms_norm's y_parts adds them. host_rows (Q6_K, one matrix, no column
// parts or bias, else false): y is page-locked host memory, written over the bus as rows finish.
bool matvec_stream(WFmt fmt, int parts, const WeightView* w, const float* const* bias, float* const* y, const float* x,
                   StreamGrid grid, cudaStream_t stream, int column_parts = 1, bool host_rows = false);
// The column parts matvec_stream splits a row of `cols` into: 1 up to 256 chunks of x.
int stream_column_parts(WFmt fmt, int64_t cols);
bool gate_up_stream(WFmt fmt, const WeightView& gate, const WeightView& up, const float* x, float* out,
                    StreamGrid grid, cudaStream_t stream);
// y [n, w.rows] = x [n, w.cols] W^T (+ bias [w.rows]). With int8_x, Q4_0 / Q8_0 / Q6_K products
// of one row quantize x to int8 per 32 values (amax / 127, rounded half away from zero, as
// ggml's Q8_0) and multiply in integers.
void linear(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n, bool int8_x,
            cudaStream_t stream);
// Q4_0 / Q8_0 weights and several rows of x: x quantized to int8 (as linear's int8_x) into
// `scratch` (linear_int8_rows_scratch bytes), then integer products reading the weights once
// per 16 rows of x.
void linear_int8_rows(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n,
                      void* scratch, cudaStream_t stream);
int64_t linear_int8_rows_scratch(int64_t n, int64_t cols);
// The same products on the int8 tensor cores (mma.m16n8k32, sm_80 and later; cuda_mma.cu), for
// Q4_0, Q8_0 and Q6_K weights: x quantized to int8 as above into `scratch`
// (linear_int8_mma_scratch bytes), 1..kMmaMaxRows rows of x, the weights read once. x_ready:
// scratch already holds this x, quantized by the last call (products of the same x).
constexpr int64_t kMmaMaxRows = 64;
bool linear_int8_mma_supported(int cc_major);
int64_t linear_int8_mma_scratch(int64_t n, int64_t rows, int64_t cols);
void linear_int8_mma(WFmt fmt, const WeightView& w, const float* x, const float* bias, float* y, int64_t n,
                     void* scratch, cudaStream_t stream, bool x_ready = false);
// y[i] = x w[i]^T for three weights of one format (Q4_0 or Q8_0) and the same row of x, in
// one launch.
void linear3_int8(WFmt fmt, const WeightView (&w)[3], const float* x, float* const (&y)[3], cudaStream_t stream);
// out [gate.rows] = gelu_tanh(x gate^T) * (x up^T) for one row of x, Q4_0 or Q8_0 (both the
// same), int8 x as linear's int8_x.
void gate_up_int8(WFmt fmt, const WeightView& gate, const WeightView& up, const float* x, float* out,
                  cudaStream_t stream);
// For tensor-core products (cuda_blas.h): x f32 -> bf16; any weight -> bf16 [rows, cols];
// y [n, m] (rows ldy apart) += bias [m] (null: none), then y = gelu_tanh(y) if gelu.
void f32_to_bf16(const float* x, void* out, int64_t count, cudaStream_t stream);
void bf16_to_f32(const void* x, float* out, int64_t count, cudaStream_t stream);
// weight_to_bf16: rows [r0, r1) (r1 < 0: to the end) into out [r1 - r0, cols].
void weight_to_bf16(WFmt fmt, const WeightView& w, void* out, cudaStream_t stream, int64_t r0 = 0, int64_t r1 = -1);
void bias_act(float* y, const float* bias, int64_t n, int64_t m, int64_t ldy, bool gelu, cudaStream_t stream);
// Token ids for embed: in device memory, or (device null) up to kInlineIds of them in the
// launch's arguments (a decode step's: no upload before the kernel).
struct EmbedIds {
  static constexpr int kInlineIds = 8;
  const int32_t* device = nullptr;
  int32_t inline_ids[kInlineIds] = {};
};
// out [n, w.cols] = W[ids[i], :] * scale
void embed(WFmt fmt, const WeightView& w, const EmbedIds& ids, float scale, float* out, int64_t n,
           cudaStream_t stream);

// Row-wise norms over rows of width d (y may be x); w, b f32 (prepare_weight makes every
// vector f32).
void rms_norm(const float* x, const float* w, float eps, float* y, int64_t n, int64_t d, cudaStream_t stream);
// y f32, or bf16 where y_bf16 (rows only products read).
void layer_norm(const float* x, const float* w, const float* b, float eps, void* y, bool y_bf16, int64_t n, int64_t d,
                cudaStream_t stream);
// x += rms_norm(y, w_post); next = rms_norm(x, w_next) when w_next is given. One block a row.
// y_parts > 1: y is the sum of that many [n, d] parts, one after another.
void residual_rms_norm(float* x, const float* y, const float* w_post, float eps, const float* w_next, float* next,
                       int64_t n, int64_t d, cudaStream_t stream, int y_parts = 1);
// Per head of x [n, width]: RMS norm with w [head_dim] (1 + w), then RoPE; one block a head.
void rms_norm_rope(float* x, const float* w, float eps, const int32_t* positions, const float* inv_freq, int64_t n,
                   int64_t width, int64_t head_dim, cudaStream_t stream);
// Where qk_norm_rope also puts k's rows (normed and roped) and v's [n, k_width]: the KV cache
// rows slots[i] (f16 or f32, as the cache).
struct KvStore {
  const float* v = nullptr;
  const int32_t* slots = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  bool f16 = false;
};
// The same for q [n, q_width] with wq and k [n, k_width] with wk in one launch; with `store`,
// k and v also into the KV cache (no scatter_rows_pair after it).
void qk_norm_rope(float* q, const float* wq, int64_t q_width, float* k, const float* wk, int64_t k_width, float eps,
                  const int32_t* positions, const float* inv_freq, int64_t n, int64_t head_dim, cudaStream_t stream,
                  const KvStore& store = {});
// In place, rotate-half layout; inv_freq [head_dim / 2].
void rope(float* x, const int32_t* positions, const float* inv_freq, int64_t n, int64_t width, int64_t head_dim,
          cudaStream_t stream);
// out = gelu_tanh(gate) * up (up may be null: out = gelu_tanh(gate)).
void gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t count, cudaStream_t stream);
void add(const float* a, const float* b, float* out, int64_t count, cudaStream_t stream);
// dst[rows[i], :] = src[i, :] (scatter) or dst[i, :] = src[rows[i], :] (gather); rows of `bytes`.
void scatter_rows(const void* src, const int32_t* rows, void* dst, int64_t n, int64_t row_bytes, cudaStream_t stream);
void gather_rows(const void* src, const int32_t* rows, void* dst, int64_t n, int64_t row_bytes, cudaStream_t stream);
// Rows of f32 [n, width] into a half-precision cache: dst[rows[i]] = half(src[i]) (round to nearest).
void scatter_rows_to_f16(const float* src, const int32_t* rows, void* dst, int64_t n, int64_t width,
                         cudaStream_t stream);
// Rows of several sequences into their caches in one launch: jobs [count] in device memory,
// each dst[rows[i]] = src[i] for i < n, rows of `width` f32 (to_f16: into an f16 cache).
struct RowScatter {
  const float* src = nullptr;
  const int32_t* rows = nullptr;
  void* dst = nullptr;
  int64_t n = 0;
};
void scatter_rows_multi(const RowScatter* jobs, int64_t count, int64_t max_n, int64_t width, bool to_f16,
                        cudaStream_t stream);
// One sequence's K and V rows (a and b) in one launch, the jobs passed by value (no upload).
void scatter_rows_pair(const RowScatter& a, const RowScatter& b, int64_t width, bool to_f16, cudaStream_t stream);
// out [count] f32 = x [count] f16.
void f16_to_f32(const void* x, float* out, int64_t count, cudaStream_t stream);
void patchify(const float* image, int64_t size, int64_t patch, float* out, cudaStream_t stream);
void avg_pool_grid(const float* x, int64_t side, int64_t kernel, int64_t channels, float* out, cudaStream_t stream);

struct AttentionArgs {
  const float* q = nullptr;  // [n_q, H * hd]
  const void* k = nullptr;  // [n_k, KVH * hd], f32 or (kv_f16) f16
  const void* v = nullptr;
  bool kv_f16 = false;
  // q, K and V in bf16 (q_bf16 set instead of q, kv_bf16): flash_attention's wgmma kernel only.
  const void* q_bf16 = nullptr;
  bool kv_bf16 = false;
  float* out = nullptr;      // [n_q, H * hd]
  void* out_bf16 = nullptr;  // set instead of out (flash attention only): out in bf16
  const int32_t* q_pos = nullptr;
  const int32_t* q_group = nullptr;
  const int32_t* k_pos = nullptr;
  const int32_t* k_group = nullptr;
  int64_t n_q = 0, n_k = 0, heads = 0, kv_heads = 0, head_dim = 0, window = 0;
  // The split kernels walk k_count keys from slot k_first on, past slot n_k - 1 to slot 0 (the
  // mask's key span: every key a query sees; attention_args sets 0 and n_k without one).
  int64_t k_first = 0, k_count = 0;
  bool causal = true;
  bool every_key = false;  // not causal and no empty key slot: every query sees every key
  float scale = 1.0f;
  // One decode query with its step's q/k norms and RoPE done by the split kernel
  // (qk_norm_rope_attention): q and the new key are raw, the kernel norms and rotates q's
  // heads and the key (row slot of the caches: written there, never read from them).
  struct NewKey {
    const float* wq = nullptr;  // null: none (q and the cache as they are)
    const float* wk = nullptr;
    const float* inv_freq = nullptr;  // [hd / 2]
    const float* k = nullptr;         // [KVH * hd]
    const float* v = nullptr;
    void* k_cache = nullptr;  // a.k, a.v, written
    void* v_cache = nullptr;
    float eps = 0.0f;
    int32_t position = 0;
    int64_t slot = -1;
  } new_key;
};
// head_dim at most kMaxAttentionHeadDim.
constexpr int64_t kMaxAttentionHeadDim = 256;
// A few queries with head dims of 32, 64, 128 or 256 split the keys over blocks (multiprocessors:
// the GPU's), whose partial sums need `scratch` of attention_scratch_bytes (0: none).
int64_t attention_scratch_bytes(const AttentionArgs& a, int multiprocessors);
// Whether attention of `a` (one query) runs the split kernel, which can take a.new_key.
bool attention_takes_new_key(const AttentionArgs& a, int multiprocessors);
void attention(const AttentionArgs& a, int multiprocessors, void* scratch, cudaStream_t stream);
// Several sequences' attention at once (a decode batch): `args` in device memory, `host` the
// same on the host, all with the same heads, head dim and KV type; max_nq: the most queries any
// has. Where every sequence can take attention's split kernel, each one's keys split in
// attention_multi_splits parts (enough blocks for the GPU), whose partial sums need `scratch`
// of attention_multi_scratch_bytes; with 0 splits one block per (query, head) walks every key.
int attention_multi_splits(std::span<const AttentionArgs> host, int64_t max_nq, int multiprocessors);
int64_t attention_multi_scratch_bytes(std::span<const AttentionArgs> host, int64_t max_nq, int splits);
void attention_multi(const AttentionArgs* args, std::span<const AttentionArgs> host, int64_t max_nq, int splits,
                     void* scratch, cudaStream_t stream);
// Attention of many queries on the f16 tensor cores, the scores in registers (flash attention,
// cuda_flash.cu: q and the probabilities rounded to f16, f32 sums). K and V must be f16
// (a.kv_f16) and the head dimension supported; false (nothing launched) otherwise.
// wgmma: where every key is visible and head_dim is 72 (SigLIP), Hopper's wgmma kernel (in
// builds for sm_90a, flash_wgmma_built; the caller says whether the GPU is one: compute 9.x).
// That kernel also takes q, K and V in bf16 (a.q_bf16, a.kv_bf16: the vision tower's, as
// cuBLAS writes them); such args run there or nowhere (false).
bool flash_attention_supported(int64_t head_dim);  // a multiple of 8, at most 128
bool flash_wgmma_built();
bool flash_attention(const AttentionArgs& a, bool wgmma, cudaStream_t stream);
// f32 -> f16, count values.
void f32_to_f16_device(const float* x, void* out, int64_t count, cudaStream_t stream);
// For attention through matrix products: scores [heads][rows][n_k] of queries q0..q0+rows-1
// (already scaled) -> softmax over the visible keys, in place (masked ones 0).
void masked_softmax(const AttentionArgs& a, float* scores, int64_t q0, int64_t rows, cudaStream_t stream);

}  // namespace unicorn::cuda
