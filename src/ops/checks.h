// Shape checks shared by every backend: each op validates its arguments with these before
// touching memory, so a wrong shape is an Error naming the op and both shapes.
#pragma once

#include "core/error.h"
#include "core/tensor.h"
#include "ops/backend.h"

namespace unicorn::ops {

void check_embed(const Tensor& table, std::span<const int32_t> ids, const Tensor& out);
// bf16: x and y may also be BF16 (a backend whose product_input_dtype() is BF16).
void check_linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, bool bf16 = false);
// linear_parts: w splits into ys.size() parts, each y f32 [n, m] (or, where bf16, all of them
// bf16, as x may be); returns m.
int64_t check_linear_parts(const Tensor& x, const Tensor& w, const Tensor* bias, std::span<Tensor* const> ys,
                           bool bf16 = false);
// y f32, or also BF16 where bf16_y.
void check_norm(const char* op, const Tensor& x, const Tensor& w, const Tensor& y, bool bf16_y = false);
void check_rope(const Tensor& x, std::span<const int32_t> positions, int64_t head_dim);
// A norm of each head (weight [head_dim]) then RoPE, head_dim up to max_head_dim.
void check_norm_rope(const char* op, const Tensor& x, const Tensor& w, std::span<const int32_t> positions,
                     int64_t head_dim, int64_t max_head_dim);
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);
// k and v f32, or both f16 where f16_kv (a backend whose kv_dtype() is F16); out f32, or also
// bf16 where bf16_out; q, k and v all bf16 where bf16_qkv (a backend whose product_input_dtype
// is BF16: the vision tower's, written by its products).
void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionMask& mask,
                     const AttentionShape& shape, const Tensor& out, bool f16_kv = false, bool bf16_out = false,
                     bool bf16_qkv = false);
// small and big of one dtype, or (f32_to_f16: scatter into a half-precision KV cache) F32 and F16.
void check_rows(const char* op, const Tensor& small, std::span<const int32_t> rows, const Tensor& big,
                bool f32_to_f16 = false);
void check_patchify(const Tensor& image, int64_t patch, const Tensor& out);
void check_avg_pool(const Tensor& x, int64_t side, int64_t kernel, const Tensor& out);
// Activations are f32 matrices (or, where bf16, also BF16 ones).
void check_f32_matrix(const char* op, const char* what, const Tensor& t, bool bf16 = false);

}  // namespace unicorn::ops
