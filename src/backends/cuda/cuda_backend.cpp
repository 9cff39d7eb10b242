#ifdef UNICORN_HAVE_CUDA
// The CUDA backend (cuda_backend.h): device memory, weight upload into the layouts of
// cuda_kernels.h, and the ops of ops/backend.h on one stream per backend. Host code (g++);
// the kernels are in the .cu files, the device listing in cuda_devices.cpp, the upload ring
// and the profile in cuda_support.*. The class is in cuda_backend_impl.h (with its small ops);
// here its products, in cuda_backend_attention.cpp its attention and KV cache writes.
#include "backends/cuda/cuda_backend_impl.h"

namespace unicorn {
namespace cuda_impl {

void CudaBackend::linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  ops::check_linear(x, w, bias, y, true);
  if (y.dtype() == DType::BF16) {  // (product_input_dtype: the vision tower's q, k, v) f32, rounded
    Tensor t = empty(DType::F32, y.shape());
    linear(x, w, bias, t);
    return cuda::f32_to_bf16(t.data<const float>(), y.raw(), y.numel(), ctx_->stream);
  }
  const int64_t n = x.dim(0);
  if (is_host_result(y)) {
    // In page-locked host memory (result_buffer: a decode step's logits): the streamed Q6_K
    // product (the LM head) writes its rows there as it makes them; any other product into
    // device memory first, then a copy queued after it (to_host waits for both).
    const auto [fmt, view] = weight_of(w);
    float* yp = y.data<float>();
    if (on_.stream && n == 1 && !bias && x.dtype() == DType::F32) {
      OpScope scope(*this, "linear: one row to the host");
      if (cuda::matvec_stream(fmt, 1, &view, nullptr, &yp, x.data<const float>(), stream_grid_, ctx_->stream, 1, true))
        return;
    }
    Tensor t = empty(DType::F32, y.shape());
    linear(x, w, bias, t);
    UNICORN_CUDA_CHECK(cudaMemcpyAsync(yp, t.raw(), size_t(t.nbytes()), cudaMemcpyDeviceToHost, ctx_->stream));
    return;
  }
  OpScope scope(*this, "linear");
  const auto [fmt, view] = weight_of(w);
  const float* b = bias ? f32_vector(*bias, "linear bias") : nullptr;
  if (x.dtype() == DType::BF16) {  // (product_input_dtype) to cuBLAS as it is, else widened first
    if (blas_ && n >= kTensorCoreRows) return blas_linear(x, fmt, view, b, y.data<float>(), Epilogue::kNone);
    return linear(as_f32(x), w, bias, y);
  }
  // Decode batches (2..64 rows) over Q4_0 / Q8_0 / Q6_K: int8 tensor cores, or dp4a.
  if (on_.mma && n > 1 && n <= cuda::kMmaMaxRows && mma_format(fmt)) {
    OpScope part(*this, "linear: int8 mma");
    mma_products(fmt, x, {view}, {y.data<float>()}, b);
    return;
  }
  if (!on_.exact_f32 && n > 1 && n <= kInt8Rows && (fmt == WFmt::Q4_0 || fmt == WFmt::Q8_0)) {
    OpScope part(*this, "linear: int8 rows");
    const auto s = scratch(cuda::linear_int8_rows_scratch(n, view.cols));
    cuda::linear_int8_rows(fmt, view, x.data<const float>(), b, y.data<float>(), n, s.get(), ctx_->stream);
    return;
  }
  if (blas_ && n >= kTensorCoreRows) return blas_linear(x, fmt, view, b, y.data<float>(), Epilogue::kNone);
  static constexpr const char* kOneRow[] = {"linear: one row F32",  "linear: one row F16",  "linear: one row BF16",
                                            "linear: one row Q4_0", "linear: one row Q8_0", "linear: one row Q4_K",
                                            "linear: one row Q6_K", "linear: one row NF4"};
  OpScope part(*this, n == 1 ? kOneRow[int(fmt)] : "linear: few rows");
  float* yp = y.data<float>();
  if (on_.stream && n == 1 &&
      cuda::matvec_stream(fmt, 1, &view, &b, &yp, x.data<const float>(), stream_grid_, ctx_->stream))
    return;
  cuda::linear(fmt, view, x.data<const float>(), b, yp, n, !on_.exact_f32, ctx_->stream);
}

void CudaBackend::fused_linear(const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y, Epilogue e) {
  ops::check_linear(x, w, bias, y, true);
  if (e == Epilogue::kAccumulate) ops::check_f32_matrix("linear_add", "y", y);
  const bool on_blas = blas_ && x.dim(0) >= kTensorCoreRows;
  if (y.dtype() == DType::BF16) {
    // bf16 from cuBLASLt's epilogue (the bias rounded to bf16 for it), else f32 then rounded.
    const auto [fmt, view] = weight_of(w);
    if (on_blas && fmt == WFmt::BF16 && !graphs_.recording()) {
      OpScope scope(*this, "linear_gelu");
      const auto xb = bf16_input(x);
      const auto b16 = bias ? bias_bf16(*bias) : nullptr;
      if (blas_->gemm_bf16_out(xb.get(), view.p0, y.raw(), x.dim(0), view.rows, view.cols, b16.get(),
                               e == Epilogue::kGelu))
        return;
    }
    Tensor t = empty(DType::F32, y.shape());
    fused_linear(x, w, bias, t, e);
    return cuda::f32_to_bf16(t.data<const float>(), y.raw(), y.numel(), ctx_->stream);
  }
  if (!on_blas && e == Epilogue::kGelu) return Backend::linear_gelu(x, w, bias, y);
  if (!on_blas) return Backend::linear_add(x, w, bias, y);
  OpScope scope(*this, e == Epilogue::kGelu ? "linear_gelu" : "linear_add");
  const auto [fmt, view] = weight_of(w);
  blas_linear(x, fmt, view, bias ? f32_vector(*bias, "linear bias") : nullptr, y.data<float>(), e);
}

std::shared_ptr<const void> CudaBackend::bf16_input(const Tensor& x) {
  if (x.dtype() == DType::BF16) return {std::shared_ptr<const void>(), x.raw()};
  const auto xb = scratch(x.numel() * 2);
  OpScope to_bf16(*this, "linear: to bf16");
  cuda::f32_to_bf16(x.data<const float>(), xb.get(), x.numel(), ctx_->stream);
  return xb;
}

std::shared_ptr<const void> CudaBackend::bias_bf16(const Tensor& bias) {
  if (const void* p = cuda::bf16_vector(bias)) return {std::shared_ptr<const void>(), p};
  const auto b16 = scratch(bias.numel() * 2);
  cuda::f32_to_bf16(f32_vector(bias, "linear bias"), b16.get(), bias.numel(), ctx_->stream);
  return b16;
}

void CudaBackend::blas_linear(const Tensor& x, WFmt fmt, const WeightView& view, const float* b, float* y, Epilogue e) {
  if (graphs_.recording()) return graphs_.spoil(false);  // cuBLAS is not recorded here
  const int64_t n = x.dim(0);
  const auto xb = bf16_input(x);
  if (fmt == WFmt::BF16) {
    OpScope product(*this, "linear: cuBLAS");
    blas_->gemm_bf16(xb.get(), view.p0, y, n, view.rows, view.cols, view.rows, b, e);
    return;
  }
  // Other formats dequantized to bf16 panels, each multiplied into its columns of y: the
  // whole matrix at once where the GPU has room (fewest, largest products), in panels of
  // down to 64 MiB when free memory is short (a 27B FFN matrix is 231 MB in bf16).
  const int64_t budget = std::clamp<int64_t>(free_memory() / 16, kPanelBytes, int64_t(1) << 30);
  const int64_t step = std::max<int64_t>(64, budget / (view.cols * 2) / 64 * 64);
  const int64_t panel_rows = std::min(view.rows, step);
  const auto wb = scratch(panel_rows * view.cols * 2);
  for (int64_t r0 = 0; r0 < view.rows; r0 += panel_rows) {
    const int64_t r1 = std::min(view.rows, r0 + panel_rows);
    {
      OpScope to_bf16(*this, "linear: to bf16");
      cuda::weight_to_bf16(fmt, view, wb.get(), ctx_->stream, r0, r1);
    }
    OpScope product(*this, "linear: cuBLAS");
    blas_->gemm_bf16(xb.get(), wb.get(), y + r0, n, r1 - r0, view.cols, view.rows, b ? b + r0 : nullptr, e);
  }
}

void CudaBackend::linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::span<Tensor* const> ys) {
  const int64_t m = ops::check_linear_parts(x, w, bias, ys, true), n = x.dim(0), P = int64_t(ys.size());
  const auto [fmt, view] = weight_of(w);
  const bool bf16 = ys[0]->dtype() == DType::BF16;
  const auto* y0 = static_cast<const char*>(ys[0]->raw());
  bool batched = blas_ && n >= kTensorCoreRows && fmt == WFmt::BF16 && !graphs_.recording();
  for (int64_t p = 0; p < P; ++p) batched = batched && ys[size_t(p)]->raw() == y0 + p * n * m * (bf16 ? 2 : 4);
  if (batched) {
    OpScope scope(*this, "linear_parts: cuBLAS");
    const auto xb = bf16_input(x);
    if (!bf16)
      return blas_->gemm_bf16_parts(xb.get(), view.p0, ys[0]->data<float>(), n, m, view.cols, int(P),
                                    bias ? f32_vector(*bias, "linear bias") : nullptr);
    const auto b16 = bias ? bias_bf16(*bias) : nullptr;
    if (blas_->gemm_bf16_parts_out(xb.get(), view.p0, ys[0]->raw(), n, m, view.cols, int(P), b16.get())) return;
  }
  if (bf16) {  // f32 parts, then rounded
    std::vector<Tensor> t;
    std::vector<Tensor*> tp;
    for (int64_t p = 0; p < P; ++p) t.push_back(empty(DType::F32, {n, m}));
    for (Tensor& part : t) tp.push_back(&part);
    linear_parts(x, w, bias, tp);
    for (int64_t p = 0; p < P; ++p)
      cuda::f32_to_bf16(t[size_t(p)].data<const float>(), ys[size_t(p)]->raw(), n * m, ctx_->stream);
    return;
  }
  Tensor t = empty(DType::F32, {n, P * m});
  linear(x, w, bias, t);
  for (int64_t p = 0; p < P; ++p)
    UNICORN_CUDA_CHECK(cudaMemcpy2DAsync(ys[size_t(p)]->raw(), size_t(m) * 4, t.data<float>() + p * m,
                                         size_t(P * m) * 4, size_t(m) * 4, size_t(n), cudaMemcpyDeviceToDevice,
                                         ctx_->stream));
}

void CudaBackend::gate_up(const Tensor& x, const Tensor& w_gate, const Tensor& w_up, Tensor& out) {
  const auto [gf, gv] = weight_of(w_gate);
  const auto [uf, uv] = weight_of(w_up);
  const int64_t n = x.dim(0);
  if (on_.mma && n > 1 && n <= cuda::kMmaMaxRows && gf == uf && mma_format(gf)) {
    // A decode batch: x quantized once, the two products, then GELU(gate) * up.
    ops::check_linear(x, w_gate, nullptr, out);
    ops::check_linear(x, w_up, nullptr, out);
    OpScope scope(*this, "gate_up");
    const auto g = scratch(out.nbytes());
    float* gp = static_cast<float*>(g.get());
    mma_products(gf, x, {gv, uv}, {gp, out.data<float>()});
    cuda::gelu_tanh_mul(gp, out.data<const float>(), out.data<float>(), out.numel(), ctx_->stream);
    return;
  }
  const bool int8_kernel = gf == WFmt::Q4_0 || gf == WFmt::Q8_0;
  if (on_.exact_f32 || n != 1 || gf != uf || gv.rows != uv.rows || gv.cols != uv.cols ||
      !(int8_kernel || (on_.stream && (gf == WFmt::Q4_K || gf == WFmt::NF4)))) {
    Backend::gate_up(x, w_gate, w_up, out);  // the products and GELU one by one
    return;
  }
  ops::check_linear(x, w_gate, nullptr, out);
  ops::check_linear(x, w_up, nullptr, out);
  {
    OpScope scope(*this, "gate_up");
    if (on_.stream &&
        cuda::gate_up_stream(gf, gv, uv, x.data<const float>(), out.data<float>(), stream_grid_, ctx_->stream))
      return;
    if (int8_kernel) return cuda::gate_up_int8(gf, gv, uv, x.data<const float>(), out.data<float>(), ctx_->stream);
  }
  Backend::gate_up(x, w_gate, w_up, out);  // (Q4_K / NF4 rows the streamed kernel does not take)
}

void CudaBackend::linear_residual_rms_norm(const Tensor& a, const Tensor& w, Tensor& x, const Tensor& w_post,
                                           float eps, const Tensor* w_next, Tensor* next) {
  const auto [fmt, view] = weight_of(w);
  const int parts = cuda::stream_column_parts(fmt, view.cols);
  if (on_.stream && a.rank() == 2 && a.dim(0) == 1 && a.dtype() == DType::F32 && parts > 1) {
    Tensor y = empty(DType::F32, {parts, view.rows});
    ops::check_linear(a, w, nullptr, y.rows(0, 1));
    ops::check_norm("linear_residual_rms_norm", y.rows(0, 1), w_post, x);
    if (w_next) ops::check_norm("linear_residual_rms_norm", x, *w_next, *next);
    OpScope scope(*this, "linear_residual_rms_norm: column parts");
    float* yp = y.data<float>();
    if (cuda::matvec_stream(fmt, 1, &view, nullptr, &yp, a.data<const float>(), stream_grid_, ctx_->stream, parts))
      return launch_residual_norm(x, yp, parts, w_post, eps, w_next, next);
  }
  Backend::linear_residual_rms_norm(a, w, x, w_post, eps, w_next, next);
}

void CudaBackend::mma_products(WFmt fmt, const Tensor& x, std::initializer_list<WeightView> views,
                               std::initializer_list<float*> ys, const float* bias) {
  const int64_t n = x.dim(0);
  int64_t bytes = 0;
  for (const WeightView& v : views) bytes = std::max(bytes, cuda::linear_int8_mma_scratch(n, v.rows, v.cols));
  const auto s = scratch(bytes);
  auto y = ys.begin();
  bool x_ready = false;
  for (const WeightView& v : views) {
    cuda::linear_int8_mma(fmt, v, x.data<const float>(), bias, *y++, n, s.get(), ctx_->stream, x_ready);
    x_ready = true;
  }
}

void CudaBackend::linear3(const Tensor& x, const Tensor& w0, const Tensor& w1, const Tensor& w2, Tensor& y0,
                          Tensor& y1, Tensor& y2) {
  const auto [f0, v0] = weight_of(w0);
  const auto [f1, v1] = weight_of(w1);
  const auto [f2, v2] = weight_of(w2);
  const int64_t n = x.dim(0);
  if (on_.mma && n > 1 && n <= cuda::kMmaMaxRows && f0 == f1 && f0 == f2 && mma_format(f0)) {
    // A decode batch: x quantized once for the three products.
    ops::check_linear(x, w0, nullptr, y0);
    ops::check_linear(x, w1, nullptr, y1);
    ops::check_linear(x, w2, nullptr, y2);
    OpScope scope(*this, "linear3");
    mma_products(f0, x, {v0, v1, v2}, {y0.data<float>(), y1.data<float>(), y2.data<float>()});
    return;
  }
  const bool int8_kernel = f0 == WFmt::Q4_0 || f0 == WFmt::Q8_0;
  if (on_.exact_f32 || n != 1 || f0 != f1 || f0 != f2 || !(int8_kernel || (on_.stream && f0 == WFmt::Q4_K))) {
    Backend::linear3(x, w0, w1, w2, y0, y1, y2);  // one product at a time
    return;
  }
  ops::check_linear(x, w0, nullptr, y0);
  ops::check_linear(x, w1, nullptr, y1);
  ops::check_linear(x, w2, nullptr, y2);
  {
    OpScope scope(*this, "linear3");
    const cuda::WeightView views[3] = {v0, v1, v2};
    float* const outs[3] = {y0.data<float>(), y1.data<float>(), y2.data<float>()};
    if (on_.stream &&
        cuda::matvec_stream(f0, 3, views, nullptr, outs, x.data<const float>(), stream_grid_, ctx_->stream))
      return;
    if (int8_kernel) return cuda::linear3_int8(f0, views, x.data<const float>(), outs, ctx_->stream);
  }
  Backend::linear3(x, w0, w1, w2, y0, y1, y2);
}

Tensor CudaBackend::prepare_weight(const Tensor& host) {
  DeviceGuard g(ctx_->device);
  return cuda::prepare_weight(host, [this](DType dtype, const Shape& shape, const cuda::UploadParts& parts,
                                           std::vector<const uint8_t*>* starts) {
    return cuda::upload_weight(*arena_, dtype, shape, parts, starts);
  });
}

}  // namespace cuda_impl

std::unique_ptr<Backend> create_cuda_backend(int index) { return std::make_unique<cuda_impl::CudaBackend>(index); }

}  // namespace unicorn

#endif  // UNICORN_HAVE_CUDA
