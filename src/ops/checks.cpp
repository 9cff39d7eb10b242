#include "ops/checks.h"

namespace unicorn::ops {

void check_f32_matrix(const char* op, const char* what, const Tensor& t, bool bf16) {
  if ((t.dtype() != DType::F32 && !(bf16 && t.dtype() == DType::BF16)) || t.rank() != 2)
    fail("{}: {} must be an {} matrix, got {} {}", op, what, bf16 ? "f32 or bf16" : "f32", dtype_name(t.dtype()),
         shape_str(t.shape()));
}

void check_embed(const Tensor& table, std::span<const int32_t> ids, const Tensor& out) {
  if (table.rank() != 2) fail("embed: table must be [vocab, dim], got {}", shape_str(table.shape()));
  check_f32_matrix("embed", "out", out);
  if (out.dim(0) != int64_t(ids.size()) || out.dim(1) != table.dim(1))
    fail("embed: out {} does not match {} ids x dim {}", shape_str(out.shape()), ids.size(), table.dim(1));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= table.dim(0))
      fail("token id {} at position {} is outside the vocabulary (0..{})", ids[i], i, table.dim(0) - 1);
  }
}

void check_linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, bool bf16) {
  check_f32_matrix("linear", "x", x, bf16);
  check_f32_matrix("linear", "y", y, bf16);
  if (w.rank() != 2) fail("linear: weight must be [out, in], got {}", shape_str(w.shape()));
  if (x.dim(1) != w.dim(1) || y.dim(0) != x.dim(0) || y.dim(1) != w.dim(0))
    fail("linear: x {} · w {}^T does not give y {}", shape_str(x.shape()), shape_str(w.shape()),
         shape_str(y.shape()));
  if (bias && (bias->numel() != w.dim(0)))
    fail("linear: bias {} does not match {} outputs", shape_str(bias->shape()), w.dim(0));
}

int64_t check_linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::span<Tensor* const> ys,
                           bool bf16) {
  const int64_t parts = int64_t(ys.size());
  if (parts == 0 || w.rank() != 2 || w.dim(0) % parts != 0)
    fail("linear_parts: weight {} does not split into {} parts of equal rows", shape_str(w.shape()), parts);
  const int64_t m = w.dim(0) / parts;
  check_f32_matrix("linear_parts", "x", x, bf16);
  if (x.dim(1) != w.dim(1)) fail("linear_parts: x {} against weight {}", shape_str(x.shape()), shape_str(w.shape()));
  if (bias && bias->numel() != w.dim(0))
    fail("linear_parts: bias {} does not match {} outputs", shape_str(bias->shape()), w.dim(0));
  for (const Tensor* y : ys) {
    check_f32_matrix("linear_parts", "y", *y, bf16);
    if (y->dtype() != ys[0]->dtype())
      fail("linear_parts: the parts' outputs differ in type ({} and {})", dtype_name(ys[0]->dtype()),
           dtype_name(y->dtype()));
    if (y->dim(0) != x.dim(0) || y->dim(1) != m)
      fail("linear_parts: y {} is not [{}, {}] (x {}, weight {} in {} parts)", shape_str(y->shape()), x.dim(0), m,
           shape_str(x.shape()), shape_str(w.shape()), parts);
  }
  return m;
}

void check_norm(const char* op, const Tensor& x, const Tensor& w, const Tensor& y, bool bf16_y) {
  check_f32_matrix(op, "x", x);
  check_f32_matrix(op, "y", y, bf16_y);
  if (w.numel() != x.dim(1)) fail("{}: weight {} does not match rows of width {}", op, shape_str(w.shape()), x.dim(1));
  if (y.shape() != x.shape()) fail("{}: y {} differs from x {}", op, shape_str(y.shape()), shape_str(x.shape()));
}

void check_rope(const Tensor& x, std::span<const int32_t> positions, int64_t head_dim) {
  check_f32_matrix("rope", "x", x);
  if (head_dim <= 0 || head_dim % 2 || x.dim(1) % head_dim)
    fail("rope: rows of width {} are not whole heads of even size {}", x.dim(1), head_dim);
  if (x.dim(0) != int64_t(positions.size()))
    fail("rope: {} rows but {} positions", x.dim(0), positions.size());
}

void check_norm_rope(const char* op, const Tensor& x, const Tensor& w, std::span<const int32_t> positions,
                     int64_t head_dim, int64_t max_head_dim) {
  check_rope(x, positions, head_dim);
  if (w.numel() != head_dim) fail("{}: weight {} does not match heads of {}", op, shape_str(w.shape()), head_dim);
  if (head_dim > max_head_dim) fail("{}: head_dim {} exceeds {}", op, head_dim, max_head_dim);
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != DType::F32 || b.dtype() != DType::F32 || a.shape() != b.shape())
    fail("{}: shapes {} and {} (f32 expected) differ", op, shape_str(a.shape()), shape_str(b.shape()));
}

void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                     const AttentionShape& s, const Tensor& out, bool f16_kv, bool bf16_out, bool bf16_qkv) {
  const bool all_bf16 =
      bf16_qkv && q.dtype() == DType::BF16 && k.dtype() == DType::BF16 && v.dtype() == DType::BF16;
  check_f32_matrix("attention", "q", q, all_bf16);
  const bool half = f16_kv && k.dtype() == DType::F16 && v.dtype() == DType::F16 && k.rank() == 2 && v.rank() == 2;
  if (!half) {
    check_f32_matrix("attention", "k", k, all_bf16);
    check_f32_matrix("attention", "v", v, all_bf16);
  }
  check_f32_matrix("attention", "out", out, bf16_out);
  if (s.n_heads <= 0 || s.n_kv_heads <= 0 || s.head_dim <= 0 || s.n_heads % s.n_kv_heads)
    fail("attention: bad head counts {} / {} x {}", s.n_heads, s.n_kv_heads, s.head_dim);
  if (q.dim(1) != s.n_heads * s.head_dim || out.shape() != q.shape())
    fail("attention: q {} / out {} do not hold {} heads of {}", shape_str(q.shape()), shape_str(out.shape()),
         s.n_heads, s.head_dim);
  if (k.dim(1) != s.n_kv_heads * s.head_dim || v.shape() != k.shape())
    fail("attention: k {} / v {} do not hold {} kv heads of {}", shape_str(k.shape()), shape_str(v.shape()),
         s.n_kv_heads, s.head_dim);
  if (int64_t(mask.q_pos.size()) != q.dim(0) || int64_t(mask.q_group.size()) != q.dim(0))
    fail("attention: mask has {} query positions for {} queries", mask.q_pos.size(), q.dim(0));
  if (int64_t(mask.k_pos.size()) != k.dim(0) || int64_t(mask.k_group.size()) != k.dim(0))
    fail("attention: mask has {} key positions for {} keys", mask.k_pos.size(), k.dim(0));
  if (mask.key_count >= 0 && (mask.key_count > k.dim(0) || mask.key_first < 0 ||
                              (mask.key_first >= k.dim(0) && mask.key_count > 0)))
    fail("attention: the mask's span of {} keys from slot {} does not fit {} keys", mask.key_count, mask.key_first,
         k.dim(0));
}

void check_rows(const char* op, const Tensor& small, std::span<const int32_t> rows, const Tensor& big,
                bool f32_to_f16) {
  const bool types_ok =
      small.dtype() == big.dtype() || (f32_to_f16 && small.dtype() == DType::F32 && big.dtype() == DType::F16);
  if (small.rank() != 2 || big.rank() != 2 || !types_ok || small.dim(1) != big.dim(1))
    fail("{}: {} {} and {} {} are not matrices of the same width and type", op, dtype_name(small.dtype()),
         shape_str(small.shape()), dtype_name(big.dtype()), shape_str(big.shape()));
  if (int64_t(rows.size()) != small.dim(0)) fail("{}: {} row indices for {} rows", op, rows.size(), small.dim(0));
  for (int32_t r : rows) {
    if (r < 0 || r >= big.dim(0)) fail("{}: row {} outside 0..{}", op, r, big.dim(0) - 1);
  }
}

void check_patchify(const Tensor& image, int64_t patch, const Tensor& out) {
  if (image.dtype() != DType::F32 || image.rank() != 3 || image.dim(0) != 3 || image.dim(1) != image.dim(2))
    fail("patchify: image must be f32 [3, S, S], got {}", shape_str(image.shape()));
  const int64_t side = patch > 0 ? image.dim(1) / patch : 0;
  if (patch <= 0 || image.dim(1) % patch)
    fail("patchify: image size {} is not a multiple of the patch size {}", image.dim(1), patch);
  if (out.shape() != Shape{side * side, 3 * patch * patch})
    fail("patchify: out {} should be [{}, {}]", shape_str(out.shape()), side * side, 3 * patch * patch);
}

void check_avg_pool(const Tensor& x, int64_t side, int64_t kernel, const Tensor& out) {
  check_f32_matrix("avg_pool_grid", "x", x);
  if (side <= 0 || kernel <= 0 || side % kernel || x.dim(0) != side * side)
    fail("avg_pool_grid: {} rows are not a {}x{} grid poolable by {}", x.dim(0), side, side, kernel);
  const int64_t t = side / kernel;
  if (out.shape() != Shape{t * t, x.dim(1)})
    fail("avg_pool_grid: out {} should be [{}, {}]", shape_str(out.shape()), t * t, x.dim(1));
}

}  // namespace unicorn::ops
