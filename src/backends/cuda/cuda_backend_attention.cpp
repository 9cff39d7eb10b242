#ifdef UNICORN_HAVE_CUDA
// The CUDA backend's attention ops (the class: cuda_backend_impl.h): attention over the split,
// flash or product kernels, the KV cache writes, one decode query with its norms and RoPE in the
// split kernel, and a decode batch's sequences in two launches.
#include "backends/cuda/cuda_backend_impl.h"

namespace unicorn::cuda_impl {

void CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                            const AttentionShape& shape, Tensor& out) {
  ops::check_attention(q, k, v, mask, shape, out, true, true, true);
  if (shape.head_dim > cuda::kMaxAttentionHeadDim)
    fail("cuda attention: head_dim {} exceeds {}", shape.head_dim, cuda::kMaxAttentionHeadDim);
  const bool flash = on_.flash && q.dim(0) >= kTensorCoreRows && cuda::flash_attention_supported(shape.head_dim);
  if (q.dtype() == DType::BF16) {  // the vision tower's, from cuBLAS (product_input_dtype)
    if (flash && on_.wgmma) {       // as they are on Hopper's wgmma kernel, else widened
      OpScope scope(*this, "attention");
      cuda::AttentionArgs a = attention_args(q, k, k.dim(0), v, mask, shape, out);
      const auto masks = upload_mask(a, mask);
      if (cuda::flash_attention(a, true, ctx_->stream)) return;
    }
    const Tensor q32 = as_f32(q), k32 = as_f32(k), v32 = as_f32(v);
    return attention(q32, k32, v32, mask, shape, out);
  }
  if (out.dtype() == DType::BF16 && !flash) {  // bf16 out (product_input_dtype): flash writes it
    Tensor t = empty(DType::F32, out.shape());
    attention(q, k, v, mask, shape, t);
    return cuda::f32_to_bf16(t.data<const float>(), out.raw(), out.numel(), ctx_->stream);
  }
  OpScope scope(*this, "attention");
  cuda::AttentionArgs a = attention_args(q, k, k.dim(0), v, mask, shape, out);
  const auto masks = upload_mask(a, mask);
  if (flash) {
    const auto copies = cuda::kv_as(a, true, scratch_fn(), ctx_->stream);  // f32 K and V as f16 copies
    cuda::flash_attention(a, on_.wgmma, ctx_->stream);
    return;
  }
  if (blas_ && a.n_q >= kTensorCoreRows) {
    if (graphs_.recording()) return graphs_.spoil(false);
    cuda::attention_by_products(*blas_, a, scratch_fn(), ctx_->stream);
    return;
  }
  attend(a);
}

std::array<std::shared_ptr<const int32_t>, 4> CudaBackend::upload_mask(cuda::AttentionArgs& a,
                                                                       const AttentionMask& mask) {
  std::array<std::shared_ptr<const int32_t>, 4> d{upload(mask.q_pos), upload(mask.q_group), upload(mask.k_pos),
                                                  upload(mask.k_group)};
  a.q_pos = d[0].get(), a.q_group = d[1].get(), a.k_pos = d[2].get(), a.k_group = d[3].get();
  return d;
}

void CudaBackend::attend(const cuda::AttentionArgs& a) {
  const int64_t bytes = cuda::attention_scratch_bytes(a, multiprocessors_);
  const auto partial = bytes > 0 ? scratch(bytes) : nullptr;
  cuda::attention(a, multiprocessors_, partial.get(), ctx_->stream);
}

bool CudaBackend::attend_new_key(AttentionJob& j, const AttentionShape& shape, const QkNorms& n) {
  if (j.q.dim(0) != 1 || j.k_new.dim(0) != 1 || j.out.dtype() != DType::F32) return false;
  const Tensor k = j.k_cache->rows(0, j.used), v = j.v_cache->rows(0, j.used);
  ops::check_attention(j.q, k, v, j.mask, shape, j.out, true, true);
  ops::check_norm_rope("qk_norm_rope", j.q, n.wq, n.positions, n.head_dim, 2048);
  ops::check_norm_rope("qk_norm_rope", j.k_new, n.wk, n.positions, n.head_dim, 2048);
  cuda::AttentionArgs a = attention_args(j.q, k, j.used, v, j.mask, shape, j.out);
  // The split holding the new key's slot writes it into the caches: the span must hold it.
  const int64_t slot = j.slots[0], t_new = (slot - a.k_first + a.n_k) % std::max<int64_t>(a.n_k, 1);
  if (slot < 0 || slot >= a.n_k || t_new >= a.k_count) a.k_first = 0, a.k_count = a.n_k;
  if (!cuda::attention_takes_new_key(a, multiprocessors_)) return false;
  OpScope scope(*this, "qk_norm_rope + attention");
  const auto masks = upload_mask(a, j.mask);
  a.new_key = {f32_vector(n.wq, "rms_norm weight"), f32_vector(n.wk, "rms_norm weight"),
               inv_freq(n.head_dim, n.theta, n.factor), j.k_new.data<const float>(), j.v_new.data<const float>(),
               j.k_cache->raw(), j.v_cache->raw(), n.eps, n.positions[0], j.slots[0]};
  attend(a);
  return true;
}

void CudaBackend::qk_norm_rope_attention(Tensor& q, Tensor& k, const QkNorms& norms, std::span<AttentionJob> jobs,
                                         const AttentionShape& shape) {
  if (!on_.fuse_kv || jobs.size() != 1 || jobs[0].k_new.raw() != k.raw() || jobs[0].k_new.dim(0) != k.dim(0) ||
      jobs[0].v_new.dtype() != DType::F32 || k.dtype() != DType::F32)
    return Backend::qk_norm_rope_attention(q, k, norms, jobs, shape);
  attention_job(jobs[0], shape, &norms, &q);
}

void CudaBackend::attention_jobs(std::span<AttentionJob> jobs, const AttentionShape& shape) {
  if (jobs.size() == 1 && jobs[0].k_new.dtype() == DType::F32 && jobs[0].v_new.dtype() == DType::F32)
    return attention_job(jobs[0], shape);
  bool batched = jobs.size() > 1 && shape.head_dim <= cuda::kMaxAttentionHeadDim;
  for (const AttentionJob& j : jobs)
    if (blas_ && j.q.dim(0) >= kTensorCoreRows) batched = false;
  if (!batched) return Backend::attention_jobs(jobs, shape);
  OpScope scope(*this, "attention (batch)");
  const cuda::BatchedJobs batch(jobs, shape);
  const auto d_ints = upload(batch.ints());
  std::vector<cuda::RowScatter> writes;
  std::vector<cuda::AttentionArgs> args;
  batch.arguments(d_ints.get(), writes, args);
  const auto d_writes = upload(std::span<const cuda::RowScatter>(writes));
  const auto d_args = upload(std::span<const cuda::AttentionArgs>(args));
  cuda::scatter_rows_multi(d_writes.get(), int64_t(writes.size()), batch.max_nq(), jobs[0].k_new.dim(1),
                           batch.kv_f16(), ctx_->stream);
  const int splits = cuda::attention_multi_splits(args, batch.max_nq(), multiprocessors_);
  const int64_t bytes = cuda::attention_multi_scratch_bytes(args, batch.max_nq(), splits);
  const auto partial = bytes > 0 ? scratch(bytes) : nullptr;
  cuda::attention_multi(d_args.get(), args, batch.max_nq(), splits, partial.get(), ctx_->stream);
}

void CudaBackend::attention_job(AttentionJob& j, const AttentionShape& shape, const QkNorms* norms, Tensor* q) {
  ops::check_rows("scatter_rows", j.k_new, j.slots, *j.k_cache, true);
  ops::check_rows("scatter_rows", j.v_new, j.slots, *j.v_cache, true);
  if (j.k_cache->dtype() != j.v_cache->dtype() || j.k_new.dim(1) != j.v_new.dim(1))
    fail("cuda attention: the K and V caches differ in type or width");
  if (norms && attend_new_key(j, shape, *norms)) return;
  {
    OpScope scope(*this, norms ? "qk_norm_rope + KV writes" : "scatter_rows");
    const auto d_slots = upload(j.slots);
    const bool f16 = j.k_cache->dtype() == DType::F16;
    if (norms) {
      launch_qk_norm_rope(*q, j.k_new, *norms,
                          {j.v_new.data<const float>(), d_slots.get(), j.k_cache->raw(), j.v_cache->raw(), f16});
    } else {
      cuda::scatter_rows_pair({j.k_new.data<const float>(), d_slots.get(), j.k_cache->raw(), j.k_new.dim(0)},
                              {j.v_new.data<const float>(), d_slots.get(), j.v_cache->raw(), j.v_new.dim(0)},
                              j.k_new.dim(1), f16, ctx_->stream);
    }
  }
  attention(j.q, j.k_cache->rows(0, j.used), j.v_cache->rows(0, j.used), j.mask, shape, j.out);
}

}  // namespace unicorn::cuda_impl

#endif  // UNICORN_HAVE_CUDA
