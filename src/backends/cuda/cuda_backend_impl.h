// The CUDA backend's class (cuda_backend.h creates it), with its smaller ops inline (memory,
// uploads, norms, RoPE, recorded steps); its products are defined in cuda_backend.cpp, its
// attention and KV cache writes in cuda_backend_attention.cpp. Host code (g++), included only
// where UNICORN_HAVE_CUDA is defined.
#pragma once

#include "backends/cuda/cuda_backend.h"

#include <fmt/format.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backends/cuda/cuda_blas.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_support.h"
#include "backends/cuda/cuda_weights.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/nf4.h"
#include "ops/checks.h"
#include "ops/reference_backend.h"

namespace unicorn::cuda_impl {

using cuda::Context;
using cuda::DeviceGuard;
using cuda::OpProfile;
using cuda::set_device_quietly;
using cuda::UploadRing;
using cuda::use_device;
using cuda::WFmt;
using cuda::WeightArena;
using cuda::WeightView;
using cuda::CudaWeight;
using cuda::attention_args;
using cuda::f32_vector;
using cuda::free_memory;
using cuda::weight_of;
using Epilogue = cuda::Blas::Epilogue;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : ctx_(std::make_shared<Context>()) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail("device 'cuda:{}': no usable CUDA driver ({})", index, cudaGetErrorString(e));
    }
    if (index < 0 || index >= count)
      fail("device 'cuda:{}' does not exist: this machine has {} CUDA GPU{}", index, count, count == 1 ? "" : "s");
    ctx_->device = index;
    arena_ = std::make_unique<WeightArena>(index);
    DeviceGuard g(index);
    UNICORN_CUDA_CHECK(cudaStreamCreateWithFlags(&ctx_->stream, cudaStreamNonBlocking));
    // Freed activation memory stays in the pool for the next step instead of going back to
    // the driver (cudaMallocAsync then costs about as much as a pointer bump).
    cudaMemPool_t pool;
    UNICORN_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, index));
    uint64_t threshold = UINT64_MAX;
    UNICORN_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
    int cc_major = 0;
    UNICORN_CUDA_CHECK(cudaDeviceGetAttribute(&cc_major, cudaDevAttrComputeCapabilityMajor, index));
    UNICORN_CUDA_CHECK(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, index));
    on_ = cuda::Switches::from_environment(cc_major);
    stream_grid_ = {multiprocessors_, on_.stream_warps};
    if (!on_.exact_f32) blas_ = cuda::Blas::create(ctx_->stream, on_.blas_lt, &blas_missing_);
    if (on_.profile) profile_ = std::make_unique<OpProfile>();
    cuda::allow_dependent_launches(on_.dependent_launches);
    cuda::trace_start();
  }

  ~CudaBackend() override {
    cuda::trace_dump();
    if (profile_) profile_->report(ctx_->stream);
    const char* stats = std::getenv("UNICORN_CUDA_GRAPH_STATS");
    if (stats && *stats && std::string(stats) != "0") fmt::print(stderr, "{}\n", graphs_.summary());
  }

  std::string name() const override { return fmt::format("cuda:{}", ctx_->device); }

  Tensor alloc(DType dtype, Shape shape) override {
    DeviceGuard g(ctx_->device);
    const int64_t bytes = dtype_bytes(dtype, shape_numel(shape));
    auto [p, owner] = device_block(bytes);
    UNICORN_CUDA_CHECK(cudaMemsetAsync(p, 0, size_t(bytes), ctx_->stream));
    return Tensor::view(dtype, std::move(shape), p, std::move(owner));
  }

  Tensor empty(DType dtype, Shape shape) override {
    use_device(ctx_->device);
    auto [p, owner] = device_block(dtype_bytes(dtype, shape_numel(shape)));
    return Tensor::view(dtype, std::move(shape), p, std::move(owner));
  }

  Tensor prepare_weight(const Tensor& host) override;

  Tensor to_host(const Tensor& t) override {
    if (dynamic_cast<const CudaWeight*>(t.aux().get()))
      fail("cuda: internal: to_host of a prepared weight (its GPU layout is not the host one)");
    DeviceGuard g(ctx_->device);
    if (graphs_.recording()) {  // a recording cannot wait for its results
      graphs_.spoil(false);
      return Tensor::zeros(t.dtype(), t.shape());
    }
    if (is_host_result(t)) {  // written where the host reads it: only wait for the writes
      cuda::trace_tick(ctx_->stream);
      UNICORN_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
      return t;
    }
    // Results up to 64 MiB (a decode batch's logits) into pinned memory: a copy at the bus's
    // speed, no zero fill; larger ones (all logits of a long prompt) into plain memory.
    Tensor out;
    if (t.nbytes() <= kPinnedResultBytes) {
      auto [p, owner] = pinned_.get(t.nbytes());
      out = Tensor::view(t.dtype(), t.shape(), p, std::move(owner));
    } else {
      out = Tensor::zeros(t.dtype(), t.shape());
    }
    cuda::trace_tick(ctx_->stream);
    UNICORN_CUDA_CHECK(cudaMemcpyAsync(out.raw(), t.raw(), size_t(t.nbytes()), cudaMemcpyDeviceToHost, ctx_->stream));
    UNICORN_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
    return out;
  }

  Tensor from_host(const Tensor& host) override {
    if (host.aux()) fail("cuda: from_host takes plain tensors; weights go through prepare_weight");
    DeviceGuard g(ctx_->device);
    auto [p, owner] = device_block(host.nbytes());
    if (graphs_.recording()) {  // a copy from pageable memory cannot be recorded
      graphs_.spoil(true);
    } else {
      UNICORN_CUDA_CHECK(cudaMemcpyAsync(p, host.raw(), size_t(host.nbytes()), cudaMemcpyHostToDevice, ctx_->stream));
      // From page-locked memory (host_buffer) the copy runs after this returns: done before
      // the caller may free or reuse the source.
      if (cuda::is_pinned(host.raw())) UNICORN_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
    }
    return Tensor::view(host.dtype(), host.shape(), p, std::move(owner));
  }

  // Results up to kPinnedResultBytes in page-locked memory the GPU writes through its mapping
  // (marked by HostResult: linear makes them there or copies them in; other ops must not get one).
  Tensor result_buffer(DType dtype, Shape shape) override {
    const int64_t bytes = dtype_bytes(dtype, shape_numel(shape));
    if (bytes > kPinnedResultBytes) return empty(dtype, std::move(shape));
    static const auto mark = std::make_shared<const HostResult>();
    return host_buffer(dtype, std::move(shape)).with_aux(mark);
  }
  struct HostResult : TensorAux {};
  static bool is_host_result(const Tensor& t) { return dynamic_cast<const HostResult*>(t.aux().get()) != nullptr; }

  Tensor host_buffer(DType dtype, Shape shape) override {
    DeviceGuard g(ctx_->device);  // (from any thread: the server's preprocess images on theirs)
    auto [p, owner] = pinned_.get(dtype_bytes(dtype, shape_numel(shape)));
    return Tensor::view(dtype, std::move(shape), p, std::move(owner));
  }

  void embed(const Tensor& table, std::span<const int32_t> ids, float scale, Tensor& out) override {
    ops::check_embed(table, ids, out);
    OpScope scope(*this, "embed");
    for (int32_t id : ids)
      if (id < 0 || id >= table.dim(0)) fail("embed: id {} outside the table's {} rows", id, table.dim(0));
    const auto [fmt, view] = weight_of(table);
    cuda::EmbedIds e;
    std::shared_ptr<const int32_t> d_ids;
    if (ids.size() <= size_t(cuda::EmbedIds::kInlineIds)) {
      std::copy(ids.begin(), ids.end(), e.inline_ids);
    } else {
      d_ids = upload(ids);
      e.device = d_ids.get();
    }
    cuda::embed(fmt, view, e, scale, out.data<float>(), int64_t(ids.size()), ctx_->stream);
  }

  void linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override;

  // The vision tower's products with the bias, GELU or sum in cuBLASLt's epilogue (or one by one).
  void linear_gelu(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    fused_linear(x, w, bias, y, Epilogue::kGelu);
  }
  void linear_add(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) override {
    fused_linear(x, w, bias, y, Epilogue::kAccumulate);
  }
  void fused_linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue e);

  DType product_input_dtype() const override { return blas_ ? DType::BF16 : DType::F32; }

  // x for cuBLAS: as it is when bf16, else a bf16 copy.
  std::shared_ptr<const void> bf16_input(const Tensor& x);
  // A bias for cuBLASLt's bf16 epilogues: the copy prepare_weight made, else one made now.
  std::shared_ptr<const void> bias_bf16(const Tensor& bias);
  Tensor as_f32(const Tensor& x) {  // a bf16 activation widened
    Tensor t = empty(DType::F32, x.shape());
    cuda::bf16_to_f32(x.raw(), t.data<float>(), x.numel(), ctx_->stream);
    return t;
  }

  // y = x w^T (+ b, then the epilogue e) on cuBLAS, x and the weight (dequantized) in bf16.
  void blas_linear(const Tensor& x, WFmt fmt, const WeightView& view, const float* b, float* y, Epilogue e);

  // The vision tower's q, k and v: one batched cuBLASLt product where the parts' outputs lie
  // one after another (in bf16 too: attention reads them so on Hopper), else the whole product
  // into scratch and its columns copied out.
  void linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::span<Tensor* const> ys) override;

  void linear3(const Tensor& x, const Tensor& w0, const Tensor& w1, const Tensor& w2, Tensor& y0, Tensor& y1,
               Tensor& y2) override;

  void gate_up(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out) override;

  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& y) override {
    ops::check_norm("rms_norm", x, w, y);
    OpScope scope(*this, "rms_norm");
    cuda::rms_norm(x.data<const float>(), f32_vector(w, "rms_norm weight"), eps, y.data<float>(), x.dim(0), x.dim(1),
                   ctx_->stream);
  }

  void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override {
    ops::check_norm("layer_norm", x, w, y, true);
    ops::check_norm("layer_norm", x, b, y, true);
    OpScope scope(*this, "layer_norm");
    cuda::layer_norm(x.data<const float>(), f32_vector(w, "layer_norm weight"), f32_vector(b, "layer_norm bias"), eps,
                     y.raw(), y.dtype() == DType::BF16, x.dim(0), x.dim(1), ctx_->stream);
  }

  void rope(Tensor& x, std::span<const int32_t> positions, int64_t head_dim, double theta, double factor) override {
    ops::check_rope(x, positions, head_dim);
    OpScope scope(*this, "rope");
    const float* inv = inv_freq(head_dim, theta, factor);
    const auto d_pos = upload(positions);
    cuda::rope(x.data<float>(), d_pos.get(), inv, x.dim(0), x.dim(1), head_dim, ctx_->stream);
  }

  void rms_norm_rope(Tensor& x, const Tensor& w, float eps, std::span<const int32_t> positions, int64_t head_dim,
                     double theta, double factor) override {
    ops::check_norm_rope("rms_norm_rope", x, w, positions, head_dim, 2048);
    OpScope scope(*this, "rms_norm_rope");
    const float* inv = inv_freq(head_dim, theta, factor);
    const auto d_pos = upload(positions);
    cuda::rms_norm_rope(x.data<float>(), f32_vector(w, "rms_norm weight"), eps, d_pos.get(), inv, x.dim(0), x.dim(1),
                        head_dim, ctx_->stream);
  }

  void qk_norm_rope(Tensor& q, const Tensor& wq, Tensor& k, const Tensor& wk, float eps,
                    std::span<const int32_t> positions, int64_t head_dim, double theta, double factor) override {
    OpScope scope(*this, "qk_norm_rope");
    launch_qk_norm_rope(q, k, {wq, wk, eps, positions, head_dim, theta, factor});
  }

  // q's and k's norms and RoPE in one launch; with `store`, k's and v's rows into the KV cache too.
  void launch_qk_norm_rope(Tensor& q, Tensor& k, const QkNorms& n, const cuda::KvStore& store = {}) {
    ops::check_norm_rope("qk_norm_rope", q, n.wq, n.positions, n.head_dim, 2048);
    ops::check_norm_rope("qk_norm_rope", k, n.wk, n.positions, n.head_dim, 2048);
    const auto d_pos = upload(n.positions);
    cuda::qk_norm_rope(q.data<float>(), f32_vector(n.wq, "rms_norm weight"), q.dim(1), k.data<float>(),
                       f32_vector(n.wk, "rms_norm weight"), k.dim(1), n.eps, d_pos.get(),
                       inv_freq(n.head_dim, n.theta, n.factor), q.dim(0), n.head_dim, ctx_->stream, store);
  }

  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    ops::check_same_shape("gelu_tanh_mul", gate, up);
    ops::check_same_shape("gelu_tanh_mul", gate, out);
    OpScope scope(*this, "gelu_tanh_mul");
    cuda::gelu_tanh_mul(gate.data<const float>(), up.data<const float>(), out.data<float>(), gate.numel(),
                        ctx_->stream);
  }

  void gelu_tanh(Tensor& x) override {
    ops::check_f32_matrix("gelu_tanh", "x", x);
    OpScope scope(*this, "gelu_tanh");
    cuda::gelu_tanh_mul(x.data<const float>(), nullptr, x.data<float>(), x.numel(), ctx_->stream);
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    ops::check_same_shape("add", a, b);
    ops::check_same_shape("add", a, out);
    OpScope scope(*this, "add");
    cuda::add(a.data<const float>(), b.data<const float>(), out.data<float>(), a.numel(), ctx_->stream);
  }

  void residual_rms_norm(Tensor& x, Tensor& y, const Tensor& w_post, float eps, const Tensor* w_next,
                         Tensor* next) override {
    ops::check_norm("residual_rms_norm", y, w_post, x);
    if (w_next) ops::check_norm("residual_rms_norm", x, *w_next, *next);
    OpScope scope(*this, "residual_rms_norm");
    launch_residual_norm(x, y.data<const float>(), 1, w_post, eps, w_next, next);
  }

  // One row of a over Q4_0 / Q8_0 rows wider than 256 chunks (27B's down projection): the
  // product's columns split over blocks too (stream_column_parts; each makes fewer of x's codes
  // before its products start), the norm adding the parts.
  void linear_residual_rms_norm(const Tensor& a, const Tensor& w, Tensor& x, const Tensor& w_post, float eps,
                                const Tensor* w_next, Tensor* next) override;

  DType kv_dtype() const override { return on_.kv_f16 ? DType::F16 : DType::F32; }

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                 const AttentionShape& shape, Tensor& out) override;

  // a's mask arrays into device memory (the owners returned keep them).
  std::array<std::shared_ptr<const int32_t>, 4> upload_mask(cuda::AttentionArgs& a, const AttentionMask& mask);
  void attend(const cuda::AttentionArgs& a);

  // One decode query whose q/k norms, RoPE and K/V writes the split attention kernel takes
  // (AttentionArgs::NewKey: one launch fewer; q and k are left raw); false (nothing done) where
  // attention would not run that kernel.
  bool attend_new_key(AttentionJob& j, const AttentionShape& shape, const QkNorms& n);

  void qk_norm_rope_attention(Tensor& q, Tensor& k, const QkNorms& norms, std::span<AttentionJob> jobs,
                              const AttentionShape& shape) override;

  // A decode batch: every sequence's KV writes in one launch and its attention in another
  // (one launch per sequence and layer each made 32 sequences host-bound). Jobs with many
  // queries (prefill chunks) go one by one, to the products path.
  void attention_jobs(std::span<AttentionJob> jobs, const AttentionShape& shape) override;

  void scatter_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) override {
    ops::check_rows("scatter_rows", src, rows, dst, true);
    OpScope scope(*this, "scatter_rows");
    const auto d_rows = upload(rows);
    if (src.dtype() != dst.dtype()) {  // f32 rows into a half-precision KV cache
      cuda::scatter_rows_to_f16(src.data<const float>(), d_rows.get(), dst.raw(), int64_t(rows.size()), src.dim(1),
                                ctx_->stream);
      return;
    }
    cuda::scatter_rows(src.raw(), d_rows.get(), dst.raw(), int64_t(rows.size()), dtype_bytes(src.dtype(), src.dim(1)),
                       ctx_->stream);
  }

  void gather_rows(const Tensor& src, std::span<const int32_t> rows, Tensor& dst) override {
    ops::check_rows("gather_rows", dst, rows, src);
    OpScope scope(*this, "gather_rows");
    const auto d_rows = upload(rows);
    cuda::gather_rows(src.raw(), d_rows.get(), dst.raw(), int64_t(rows.size()), dtype_bytes(src.dtype(), src.dim(1)),
                      ctx_->stream);
  }

  void patchify(const Tensor& image, int64_t patch, Tensor& out) override {
    ops::check_patchify(image, patch, out);
    OpScope scope(*this, "patchify");
    cuda::patchify(image.data<const float>(), image.dim(1), patch, out.data<float>(), ctx_->stream);
  }

  void avg_pool_grid(const Tensor& x, int64_t side, int64_t kernel, Tensor& out) override {
    ops::check_avg_pool(x, side, kernel, out);
    OpScope scope(*this, "avg_pool_grid");
    cuda::avg_pool_grid(x.data<const float>(), side, kernel, x.dim(1), out.data<float>(), ctx_->stream);
  }

  void synchronize() override {
    DeviceGuard g(ctx_->device);
    if (graphs_.recording()) return graphs_.spoil(false);
    UNICORN_CUDA_CHECK(cudaStreamSynchronize(ctx_->stream));
  }

  bool begin_graph(int64_t key, bool new_step) override {
    if (!on_.graphs) return false;
    DeviceGuard g(ctx_->device);
    ring_.make_room(UploadRing::kBytes / 2, ctx_->stream);  // a recording's uploads must not wrap it
    return graphs_.begin(key, new_step, ctx_->stream);
  }

  bool end_graph(bool run) override {
    DeviceGuard g(ctx_->device);
    ring_.settle();  // (the recording's uploads, before it runs or runs again op by op)
    return graphs_.end(run);
  }

  bool can_keep_graphs() const override { return on_.graphs && on_.graphs_ahead; }

  // A kept recording reads its uploads where the ring holds them: it runs only if the ring has
  // not wrapped since.
  int64_t keep_graph() override {
    DeviceGuard g(ctx_->device);
    ring_.settle();
    return graphs_.keep(ring_.wraps());
  }

  bool launch_graph(int64_t key, int64_t ticket) override {
    DeviceGuard g(ctx_->device);
    return graphs_.launch(key, ticket, ring_.wraps(), ctx_->stream);
  }

  int64_t graph_launches() const override { return graphs_.launches(); }
  int64_t graph_launches_kept() const override { return graphs_.kept_launches(); }
  int64_t graph_copies() const override { return graphs_.copies(); }

 private:
  // Around each op: the device made current, and the op timed when profiling.
  struct OpScope : cuda::OpScope {
    OpScope(CudaBackend& b, const char* name) : cuda::OpScope(*b.ctx_, b.profile_.get(), name) {}
  };

  // One sequence's KV writes (K and V in one launch) and its attention; with `norms`, q's and k's
  // (k_new's: all of k) norms and RoPE in that launch too (qk_norm_rope_attention), or for one
  // query all of it in the attention kernel (attend_new_key).
  void attention_job(AttentionJob& j, const AttentionShape& shape, const QkNorms* norms = nullptr, Tensor* q = nullptr);

  // x += rms_norm(y, w_post), then next = rms_norm(x, w_next) where given; y on the device, the
  // sum of y_parts parts of x's shape one after another (matvec_stream's column parts).
  void launch_residual_norm(Tensor& x, const float* y, int y_parts, const Tensor& w_post, float eps,
                            const Tensor* w_next, Tensor* next) {
    cuda::residual_rms_norm(x.data<float>(), y, f32_vector(w_post, "rms_norm weight"), eps,
                            w_next ? f32_vector(*w_next, "rms_norm weight") : nullptr,
                            w_next ? next->data<float>() : nullptr, x.dim(0), x.dim(1), ctx_->stream, y_parts);
  }

  static bool mma_format(WFmt f) { return f == WFmt::Q4_0 || f == WFmt::Q8_0 || f == WFmt::Q6_K; }

  // y_i = x w_i^T (+ bias) for weights of one format on the int8 tensor cores (a decode batch),
  // x quantized once for all of them.
  void mma_products(WFmt fmt, const Tensor& x, std::initializer_list<WeightView> views,
                    std::initializer_list<float*> ys, const float* bias = nullptr);

  // Device memory and its owner: stream-ordered (freed on the stream when the owner goes), or
  // while a step is recorded, from the step arena (the same addresses every step).
  std::pair<void*, std::shared_ptr<const void>> device_block(int64_t bytes) {
    if (graphs_.recording()) {
      void* p = graphs_.alloc(bytes);
      return {p, std::shared_ptr<const void>(p, [](const void*) {})};
    }
    void* p = cuda::stream_alloc(*ctx_, bytes);
    return {p, owner_of(p)};
  }

  // Scratch memory, freed (on the stream) when the last owner lets go.
  std::shared_ptr<void> scratch(int64_t bytes) {
    auto [p, owner] = device_block(bytes);
    return std::shared_ptr<void>(std::move(owner), p);
  }
  cuda::Scratch scratch_fn() {
    return [this](int64_t bytes) { return scratch(bytes); };
  }

  // Frees on the backend's stream once queued work is done with the memory.
  std::shared_ptr<const void> owner_of(void* p) {
    std::shared_ptr<Context> ctx = ctx_;
    return std::shared_ptr<const void>(p, [ctx](const void* q) {
      set_device_quietly(ctx->device);
      cudaFreeAsync(const_cast<void*>(q), ctx->stream);
    });
  }

  // A host array copied to device memory that lives until the work queued after it is done.
  template <class T>
  std::shared_ptr<const T> upload(std::span<const T> values) {
    if (values.empty()) return nullptr;
    const int64_t bytes = int64_t(values.size_bytes());
    if (const void* staged = ring_.put(values.data(), bytes, ctx_->stream, graphs_.recording()))
      return std::shared_ptr<const T>(std::shared_ptr<const void>(), static_cast<const T*>(staged));
    auto [p, owner] = device_block(bytes);
    if (graphs_.recording())  // too large for the ring (a long context), or it would wrap
      graphs_.spoil(bytes <= UploadRing::kBytes / 4);
    else
      UNICORN_CUDA_CHECK(cudaMemcpyAsync(p, values.data(), values.size_bytes(), cudaMemcpyHostToDevice, ctx_->stream));
    return std::shared_ptr<const T>(std::move(owner), static_cast<const T*>(p));
  }

  const float* inv_freq(int64_t head_dim, double theta, double factor) {
    const auto key = std::make_tuple(head_dim, theta, factor);
    auto it = inv_freq_.find(key);
    if (it == inv_freq_.end() && graphs_.recording()) {  // made and kept by the step run again
      graphs_.spoil(true);
      return static_cast<const float*>(device_block(head_dim / 2 * 4).first);
    }
    if (it == inv_freq_.end()) {
      std::vector<float> inv(static_cast<size_t>(head_dim / 2));
      for (int64_t p = 0; p < head_dim / 2; ++p) inv[size_t(p)] = ops::rope_inv_freq(p, head_dim, theta, factor);
      it = inv_freq_.emplace(key, from_host(Tensor::from_f32(inv, {int64_t(inv.size())}))).first;
    }
    return it->second.data<const float>();
  }

  // Rows of x from which products go to cuBLAS (below: the matrix-vector kernels, which read
  // each weight once for up to 8 rows, and the f32 tile kernel).
  static constexpr int64_t kTensorCoreRows = 16;
  // The smallest budget for the bf16 panel a weight is dequantized into for cuBLAS at once
  // (when free memory is short; more where there is room).
  static constexpr int64_t kPanelBytes = int64_t(64) << 20;
  // Rows of x up to which Q4_0 / Q8_0 products stay in integers (decode batches): reading the
  // weights once per 16 rows beats dequantizing them to bf16 for cuBLAS until about here.
  static constexpr int64_t kInt8Rows = 64;
  static constexpr int64_t kPinnedResultBytes = int64_t(64) << 20;

  std::shared_ptr<Context> ctx_;
  cuda::Switches on_;  // kernels and memory chosen from the GPU and the environment
  int multiprocessors_ = 0;
  cuda::StreamGrid stream_grid_{};  // the streamed one-row products' blocks
  std::unique_ptr<WeightArena> arena_;
  std::unique_ptr<cuda::Blas> blas_;  // null: f32 kernels only (blas_missing_ says why)
  std::unique_ptr<OpProfile> profile_;
  std::string blas_missing_;
  UploadRing ring_;  // after ctx_: destroyed first, while the stream still exists
  cuda::StepGraphs graphs_;  // likewise
  cuda::PinnedPool pinned_;
  std::map<std::tuple<int64_t, double, double>, Tensor> inv_freq_;
};

}  // namespace unicorn::cuda_impl
