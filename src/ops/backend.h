// The backend-neutral op interface. Model code (src/models) says WHAT is computed through
// these ops; each backend (src/backends/*) implements them on its own buffers. Activations
// are f32 tensors created by the backend; weights are whatever the checkpoint holds (BF16,
// F16, F32, and block formats where a backend supports them) after prepare_weight().
//
// Shapes are written on every op; check_* helpers in ops/checks.h validate them, and every
// backend calls them so a shape bug is an Error, not memory corruption.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"

namespace unicorn {

// Which keys a query sees. ref: transformers masking_utils (causal, sliding window overlay)
// and modeling_gemma3 token_type_ids_mask_function (bidirectional within one image).
//   visible(q, k) = k is a filled slot
//                   and (window == 0 or q.pos - k.pos < window)
//                   and (k.pos <= q.pos or (q.group >= 0 and q.group == k.group))
// The window bounds only how far back a query looks, also inside an image: this is what
// transformers computes (checked against the tiny reference models, whose 16- and
// 256-token images are longer than their windows; real checkpoints' windows hold a whole image).
// With causal == false every filled slot is visible (the vision tower).
struct AttentionMask {
  std::span<const int32_t> q_pos;    // [n_q] absolute positions
  std::span<const int32_t> q_group;  // [n_q] image group, -1 for text
  std::span<const int32_t> k_pos;    // [n_k] absolute positions, -1 for an empty slot
  std::span<const int32_t> k_group;  // [n_k]
  int64_t window = 0;                // sliding window, 0 for none
  bool causal = true;
  // Optional: the slots key_first, key_first + 1, ... (key_count of them, counted on from the
  // last slot to slot 0) hold every key any query may see: a sliding window's span of a ring
  // buffer, which a backend may walk instead of every slot. key_count < 0: no such span.
  int64_t key_first = 0, key_count = -1;
};

struct AttentionShape {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // grouped-query attention: head h reads kv head h / (n_heads / n_kv_heads)
  int64_t head_dim = 0;
  float scale = 1.0f;  // multiplies q.k before the softmax
};

// Gemma's q_norm and k_norm and RoPE (qk_norm_rope's arguments but q and k).
struct QkNorms {
  const Tensor& wq;
  const Tensor& wk;
  float eps = 0.0f;
  std::span<const int32_t> positions;
  int64_t head_dim = 0;
  double theta = 0.0, factor = 1.0;
};

// One sequence's share of an attention step over several sequences (decode of a batch): its
// new keys and values go into its own cache at `slots`, then its queries attend to cache rows
// [0, used) under `mask`.
struct AttentionJob {
  Tensor q;                         // [n_q, H * hd]
  Tensor k_new, v_new;              // [n_q, KVH * hd] f32
  std::span<const int32_t> slots;   // [n_q] cache rows they go to
  Tensor* k_cache = nullptr;        // [cap, KVH * hd] in kv_dtype()
  Tensor* v_cache = nullptr;
  int64_t used = 0;                 // cache rows read
  AttentionMask mask;               // over those rows
  Tensor out;                       // [n_q, H * hd]
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;

  // --- memory --------------------------------------------------------------------------
  // A zero-filled activation tensor owned by this backend.
  virtual Tensor alloc(DType dtype, Shape shape) = 0;
  // An activation tensor whose contents are unspecified, for outputs an op writes in full
  // (saves the GPU a memset per tensor; the CPU backend's are zero-filled anyway).
  virtual Tensor empty(DType dtype, Shape shape) { return alloc(dtype, std::move(shape)); }
  // Makes a host weight usable by this backend (upload, repack); the CPU backend keeps views.
  virtual Tensor prepare_weight(const Tensor& host) = 0;
  // Copies a backend tensor to a host tensor and back.
  virtual Tensor to_host(const Tensor& t) = 0;
  virtual Tensor from_host(const Tensor& host) = 0;
  // A host tensor (contents unspecified) for input that from_host will copy in: on a GPU,
  // page-locked memory, which copies at the bus's speed (an 896x896 image's 9.6 MB of pixels:
  // 0.2 against 0.7 ms on an H200's PCIe 5).
  virtual Tensor host_buffer(DType dtype, Shape shape) { return Tensor::zeros(dtype, std::move(shape)); }
  // An op's output (contents unspecified) that the host reads next through to_host: on a GPU,
  // page-locked host memory that a product may write over the bus as it makes the rows (a
  // decode step's logits: no copy after the LM head; to_host then only waits); else empty().
  virtual Tensor result_buffer(DType dtype, Shape shape) { return empty(dtype, std::move(shape)); }

  // --- ops -----------------------------------------------------------------------------
  // out[i, :] = table[ids[i], :] * scale                  table [V, D] any float dtype; out [n, D]
  virtual void embed(const Tensor& table, std::span<const int32_t> ids, float scale, Tensor& out) = 0;
  // y = x W^T (+ bias)            x [n, k] f32, w [m, k] (any weight dtype), bias [m] or null, y [n, m]
  virtual void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) = 0;
  // y = x / sqrt(mean(x^2) + eps) * (1 + w), rows of width d     x, y [n, d]; w [d]. y may be x.
  virtual void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) = 0;
  // Three products of the same x (attention's q, k and v), fused where a backend can.
  virtual void linear3(const Tensor& x, const Tensor& w0, const Tensor& w1, const Tensor& w2, Tensor& y0, Tensor& y1,
                       Tensor& y2) {
    linear(x, w0, nullptr, y0);
    linear(x, w1, nullptr, y1);
    linear(x, w2, nullptr, y2);
  }
  // y = (x - mean) / sqrt(var + eps) * w + b                     x, y [n, d]; w, b [d]. y may be x.
  virtual void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) = 0;
  // In-place rotary embedding, rotate-half layout (HF), inv_freq = 1 / (theta^(2i/hd) * factor).
  //                                                            x [n, heads * head_dim]; positions [n]
  virtual void rope(Tensor& x, std::span<const int32_t> positions, int64_t head_dim, double theta,
                    double factor) = 0;
  // Gemma's q_norm / k_norm then RoPE, fused where a backend can: each head of x
  // [n, heads * head_dim] RMS-normalized with w [head_dim], then rotated as rope() does.
  virtual void rms_norm_rope(Tensor& x, const Tensor& w, float eps, std::span<const int32_t> positions,
                             int64_t head_dim, double theta, double factor) {
    Tensor heads = x.reshaped({x.dim(0) * (x.dim(1) / head_dim), head_dim});
    rms_norm(heads, w, eps, heads);
    rope(x, positions, head_dim, theta, factor);
  }
  // rms_norm_rope of q with wq and of k with wk at the same positions (Gemma's q_norm and k_norm
  // then RoPE), in one launch where a backend can.
  virtual void qk_norm_rope(Tensor& q, const Tensor& wq, Tensor& k, const Tensor& wk, float eps,
                            std::span<const int32_t> positions, int64_t head_dim, double theta, double factor) {
    rms_norm_rope(q, wq, eps, positions, head_dim, theta, factor);
    rms_norm_rope(k, wk, eps, positions, head_dim, theta, factor);
  }
  // out = gelu_tanh(gate) * up                                   gate, up, out [n, f]. out may alias.
  virtual void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // Gemma's gated FFN input, fused where a backend can:
  //   out = gelu_tanh(x W_gate^T) * (x W_up^T)                   x [n, k]; w_gate, w_up [f, k]; out [n, f]
  virtual void gate_up(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out) {
    Tensor u = empty(DType::F32, out.shape());
    linear(x, w_gate, nullptr, out);
    linear(x, w_up, nullptr, u);
    gelu_tanh_mul(out, u, out);
  }
  // x = gelu_tanh(x)                                             x [n, f]
  virtual void gelu_tanh(Tensor& x) = 0;
  // The type of activations made only for products to read (the vision tower's normed rows,
  // q, k and v, attention output and MLP hidden values): F32, or BF16 where a backend's
  // products take bf16 inputs (CUDA's tensor cores), which then also takes it as layer_norm's
  // y, linear's and linear_parts' y, attention's q, k, v (all three) and out, linear_gelu's y
  // and the x of linear, linear_add and linear_gelu.
  virtual DType product_input_dtype() const { return DType::F32; }
  // A product and what follows it, fused where a backend can (the vision tower's MLP and
  // residual sums):
  //   linear_gelu: y = gelu_tanh(x w^T + bias);  linear_add: y += x w^T + bias  (as linear)
  virtual void linear_gelu(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
    linear(x, w, bias, y);
    gelu_tanh(y);
  }
  virtual void linear_add(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
    Tensor t = empty(DType::F32, y.shape());
    linear(x, w, bias, t);
    add(y, t, y);
  }
  // Products of one x with the parts of a stacked weight (the vision tower's q, k and v as one
  // matrix), in one product where a backend can: ys[p] = x w_p^T (+ bias_p), w_p rows
  // [p m, (p + 1) m) of w.        x [n, k]; w [P m, k]; bias [P m]; ys[p] [n, m] f32 (or bf16)
  // The default multiplies row views of w one by one (Tensor::rows refuses parts that would
  // split an interleaved weight's groups of 16 rows).
  // (Backends whose prepared weights carry more than their data, as CUDA's, override it.)
  virtual void linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::span<Tensor* const> ys);
  // out = a + b                                                  same shapes; out may alias a or b.
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // The residual step of a Gemma block, fused where a backend can:
  //   x += rms_norm(y, w_post); then, if w_next is given, next = rms_norm(x, w_next)
  // x, y, next [n, d]; y is overwritten. The default composes the ops above.
  virtual void residual_rms_norm(Tensor& x, Tensor& y, const Tensor& w_post, float eps, const Tensor* w_next,
                                 Tensor* next) {
    rms_norm(y, w_post, eps, y);
    add(x, y, x);
    if (w_next) rms_norm(x, *w_next, eps, *next);
  }
  // A product of the residual branch and the residual step after it (the attention's output
  // projection, the MLP's down projection), fused where a backend can (CUDA's decode over wide
  // rows: the product in column parts the norm adds up):
  //   y = a w^T; x += rms_norm(y, w_post); then, if w_next is given, next = rms_norm(x, w_next)
  //                                                      a [n, k]; w [d, k]; x, next [n, d]
  virtual void linear_residual_rms_norm(const Tensor& a, const Tensor& w, Tensor& x, const Tensor& w_post, float eps,
                                        const Tensor* w_next, Tensor* next) {
    Tensor y = empty(DType::F32, x.shape());
    linear(a, w, nullptr, y);
    residual_rms_norm(x, y, w_post, eps, w_next, next);
  }
  // The element type of the KV cache (the k, v that attention reads): F32, or F16 on backends
  // that halve the cache (CUDA).
  virtual DType kv_dtype() const { return DType::F32; }
  // Softmax attention:                    q [n_q, H * hd], k, v [n_k, KVH * hd], out [n_q, H * hd]
  // k and v are F32, or F16 on a backend whose kv_dtype() is F16; q, k and v all BF16 on one
  // whose product_input_dtype() is BF16.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                         const AttentionShape& shape, Tensor& out) = 0;
  // qk_norm_rope of one step's q and k (every sequence's rows), then attention_jobs over jobs
  // whose q and k_new are rows of them: in one call, so a backend may write the keys and values
  // into the caches as it norms them, or norm them inside attention. The results are the caches
  // and each job's out; q and k may be left normed or as they were.
  virtual void qk_norm_rope_attention(Tensor& q, Tensor& k, const QkNorms& norms, std::span<AttentionJob> jobs,
                                      const AttentionShape& shape) {
    qk_norm_rope(q, norms.wq, k, norms.wk, norms.eps, norms.positions, norms.head_dim, norms.theta, norms.factor);
    attention_jobs(jobs, shape);
  }
  // Each job's KV writes and attention, as scatter_rows and attention do them one by one; a
  // backend may run all the jobs' writes and attention in one launch each.
  virtual void attention_jobs(std::span<AttentionJob> jobs, const AttentionShape& shape) {
    for (AttentionJob& j : jobs) {
      scatter_rows(j.k_new, j.slots, *j.k_cache);
      scatter_rows(j.v_new, j.slots, *j.v_cache);
      const Tensor k = j.k_cache->rows(0, j.used), v = j.v_cache->rows(0, j.used);
      attention(j.q, k, v, j.mask, shape, j.out);
    }
  }
  // dst[rows[i], :] = src[i, :]                                  src [n, d]; dst [cap, d]
  // dst may be F16 where src is F32 (a KV cache of kv_dtype() F16: the rows are converted).
  virtual void scatter_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) = 0;
  // dst[i, :] = src[rows[i], :]                                  src [cap, d]; dst [n, d]
  virtual void gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) = 0;
  // Image [3, S, S] -> patches [(S/p)^2, 3 * p * p] in (channel, y, x) order, the layout of a
  // Conv2d weight [out, 3, p, p] flattened, so the patch embedding is a linear op.
  virtual void patchify(const Tensor& image, int64_t patch, Tensor& out) = 0;
  // Average pool of a square grid of patches: x [side * side, C] -> [(side / k)^2, C], k x k windows.
  virtual void avg_pool_grid(const Tensor& x, int64_t side, int64_t kernel, Tensor& out) = 0;
  // Waits for queued work (a no-op on the CPU).
  virtual void synchronize() {}
  // Recorded groups of ops (CUDA graphs): a backend may record the ops called between
  // begin_graph and end_graph instead of running them, and run the recording as one launch at
  // end_graph (replaying an earlier recording of the same `key` with the new arguments).
  // begin_graph returns false where nothing is recorded (the ops run as called); new_step: the
  // first recording of a decode step. Tensors a recording makes stay valid through the next
  // recording (one group's output is the next one's input), not longer. end_graph(true) returns whether
  // the recorded ops ran; false: none of them did (an op could not be recorded) and the caller
  // calls them again. end_graph(false) drops the recording (after an exception).
  virtual bool begin_graph(int64_t key, bool new_step) {
    (void)key;
    (void)new_step;
    return false;
  }
  virtual bool end_graph(bool run) {
    (void)run;
    return false;
  }
  // A recording kept to run later (the next decode step's first group, recorded while this
  // step's last ops run), where can_keep_graphs: keep_graph ends the recording begun by
  // begin_graph without running it and returns a ticket (> 0; 0: it cannot run later, as when
  // end_graph(true) returns false); launch_graph(key, ticket) runs it if nothing recorded that
  // key since nor changed what it reads, else returns false (nothing ran: the caller runs the
  // ops). A kept recording runs at most once; its tensors stay valid until it has run and the
  // next recording of a new step.
  virtual bool can_keep_graphs() const { return false; }
  virtual int64_t keep_graph() { return 0; }
  virtual bool launch_graph(int64_t key, int64_t ticket) {
    (void)key;
    (void)ticket;
    return false;
  }
  // Recordings that ran so far, and those of them that ran through launch_graph.
  virtual int64_t graph_launches() const { return 0; }
  virtual int64_t graph_launches_kept() const { return 0; }
  // Copies recorded into those graphs (a backend's own uploads are not: a copy between two
  // kernels of a layer would end their overlap).
  virtual int64_t graph_copies() const { return 0; }
};

}  // namespace unicorn
