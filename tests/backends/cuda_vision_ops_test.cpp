// The CUDA ops of the vision tower's products against the reference backend: the products
// with their bias, GELU or residual sum fused (cuBLASLt's epilogues), q, k and v from one
// stacked weight (linear_parts), and activations kept in bf16 (product_input_dtype). Skipped
// where no GPU is present (set UNICORN_REQUIRE_CUDA=1 on the GPU machine).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "support/cuda_ops.h"
#include "support/devices.h"
#include "support/op_checks.h"

namespace unicorn {
namespace {

using namespace test;  // CudaOps, weight, bf16_rounded, random_tensor, expect_close

// The products with what follows them fused (cuBLASLt's epilogue from 16 rows: the vision
// tower's MLP and residual sums): linear_gelu y = gelu_tanh(x w^T + b) and linear_add
// y += x w^T + b, with and without the bias, bf16 weights and f16 ones (dequantized to a bf16
// panel first), against the reference ops one by one on the values the GPU multiplies; also
// with UNICORN_CUDA_LT=0 (cublasGemmEx, then the bias and GELU in a pass of ours).
// Tolerance 1e-4 with GELU (cuBLAS's tanh is not ours), 2e-5 for the sums.
TEST_F(CudaOps, LinearGeluAndLinearAdd) {
  std::unique_ptr<Backend> no_lt;
  {
    test::ScopedEnv off("UNICORN_CUDA_LT", "0");
    no_lt = test::backend_or_skip("cuda");
  }
  ASSERT_TRUE(no_lt);
  const int64_t m = 136, k = 1152;
  for (Backend* b : {gpu.get(), no_lt.get()}) {
    for (const DType dtype : {DType::BF16, DType::F16}) {
      for (const int64_t n : {5, 16, 70}) {
        for (const bool with_bias : {true, false}) {
          SCOPED_TRACE(std::string(b == no_lt.get() ? "UNICORN_CUDA_LT=0 " : "") + std::string(dtype_name(dtype)) +
                       " n=" + std::to_string(n) + (with_bias ? " bias" : ""));
          const Tensor w = weight(dtype, m, k, 51), x = random_tensor(DType::F32, {n, k}, 52);
          const Tensor bias = random_tensor(DType::F32, {m}, 53), y0 = random_tensor(DType::F32, {n, m}, 54);
          const bool tensor_cores = n >= 16;
          const Tensor x_ref = tensor_cores ? bf16_rounded(x) : x;
          const Tensor w_ref = tensor_cores ? bf16_rounded(Tensor::from_f32(w.to_f32(), {m, k})) : w;
          const Tensor dw = b->prepare_weight(w), db = b->prepare_weight(bias);
          const Tensor* b_ref = with_bias ? &bias : nullptr;
          const Tensor* b_gpu = with_bias ? &db : nullptr;

          Tensor want = ref.alloc(DType::F32, {n, m}), got = b->alloc(DType::F32, {n, m});
          ref.linear(x_ref, w_ref, b_ref, want);
          ref.gelu_tanh(want);
          b->linear_gelu(b->from_host(x), dw, b_gpu, got);
          expect_close(b->to_host(got), want, 1e-4);

          ref.linear(x_ref, w_ref, b_ref, want);
          ref.add(y0, want, want);
          Tensor acc = b->from_host(y0);
          b->linear_add(b->from_host(x), dw, b_gpu, acc);
          expect_close(b->to_host(acc), want);
        }
      }
    }
  }
}

// linear_parts (the vision tower's q, k and v as one stacked weight): three outputs one after
// another in one buffer take cuBLASLt's batched product (with and without bias, bf16 x too,
// bf16 outputs too); outputs apart, few rows, an f16 weight or UNICORN_CUDA_LT=0 take the whole
// product and a copy of its columns (bf16 outputs: f32 parts, rounded). Each against the
// reference's three products (bf16 outputs: half an ulp more and the bias rounded, 5e-3).
TEST_F(CudaOps, LinearParts) {
  std::unique_ptr<Backend> no_lt;
  {
    test::ScopedEnv off("UNICORN_CUDA_LT", "0");
    no_lt = test::backend_or_skip("cuda");
  }
  ASSERT_TRUE(no_lt);
  const int64_t m = 72, k = 1152, P = 3;
  for (Backend* b : {gpu.get(), no_lt.get()}) {
    for (const DType dtype : {DType::BF16, DType::F16}) {
      for (const int64_t n : {5, 70}) {
        // 0: one buffer, f32 x; 1: one buffer, bf16 x; 2: apart; 3: one buffer of bf16 outputs
        for (const int layout : {0, 1, 2, 3}) {
          const bool with_bias = layout != 1, bf16_out = layout == 3;
          SCOPED_TRACE(std::string(b == no_lt.get() ? "UNICORN_CUDA_LT=0 " : "") + std::string(dtype_name(dtype)) +
                       " n=" + std::to_string(n) + " layout " + std::to_string(layout));
          const Tensor w = weight(dtype, P * m, k, 61), x = random_tensor(DType::F32, {n, k}, 62);
          const Tensor bias = random_tensor(DType::F32, {P * m}, 63);
          const bool tensor_cores = n >= 16;
          const Tensor x_ref = tensor_cores || layout == 1 ? bf16_rounded(x) : x;
          const Tensor w_ref = tensor_cores ? bf16_rounded(Tensor::from_f32(w.to_f32(), {P * m, k})) : w;
          const Tensor dw = b->prepare_weight(w), db = b->prepare_weight(bias);
          const Tensor x_in = b->from_host(layout == 1 ? x.converted(DType::BF16) : x);
          const Tensor one = b->alloc(bf16_out ? DType::BF16 : DType::F32, {P * n, m});
          std::vector<Tensor> apart;
          Tensor outs[3];
          for (int64_t p = 0; p < P; ++p) {
            if (layout == 2) apart.push_back(b->alloc(DType::F32, {n, m}));
            outs[p] = layout == 2 ? apart.back() : one.rows(p * n, n);
          }
          Tensor* const ys[] = {&outs[0], &outs[1], &outs[2]};
          b->linear_parts(x_in, dw, with_bias ? &db : nullptr, ys);
          for (int64_t p = 0; p < P; ++p) {
            Tensor want = ref.alloc(DType::F32, {n, m});
            const Tensor bp = bias.rows(p * m, m);
            ref.linear(x_ref, w_ref.rows(p * m, m), with_bias ? &bp : nullptr, want);
            expect_close(b->to_host(outs[p]).converted(DType::F32), want, bf16_out ? 5e-3 : 1e-4);
          }
        }
      }
    }
  }
}

// Activations only products read stay bf16 on "cuda" (product_input_dtype): layer_norm,
// attention, linear and linear_gelu write bf16, linear / linear_add / linear_gelu read it, through cuBLAS from 16
// rows and the f32 kernels below (x widened first). Results rounded to bf16 against the f32
// reference: half an ulp, 2^-8 of the value (4e-3; 5e-3 where cuBLASLt also rounds the bias to
// bf16); products of bf16 x against the reference on the same values (2e-5). "cuda-f32" and the
// CPU keep f32 and refuse bf16 activations.
TEST_F(CudaOps, Bf16ProductInputs) {
  EXPECT_EQ(gpu->product_input_dtype(), DType::BF16);
  EXPECT_EQ(test::backend_or_skip("cuda-f32")->product_input_dtype(), DType::F32);
  const int64_t m = 136, k = 1152;
  const Tensor w = weight(DType::BF16, m, k, 61), bias = random_tensor(DType::F32, {m}, 62);
  const Tensor dw = gpu->prepare_weight(w), db = gpu->prepare_weight(bias);
  const Tensor ln_w = random_tensor(DType::BF16, {k}, 63, 0.5f), ln_b = random_tensor(DType::BF16, {k}, 64);
  const Tensor dln_w = gpu->prepare_weight(ln_w), dln_b = gpu->prepare_weight(ln_b);
  for (const int64_t n : {5, 70}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const bool tensor_cores = n >= 16;
    const Tensor x = random_tensor(DType::F32, {n, k}, 65, 3.0f);
    // layer_norm into bf16.
    Tensor normed = ref.alloc(DType::F32, {n, k}), h = gpu->alloc(DType::BF16, {n, k});
    ref.layer_norm(x, ln_w, ln_b, 1e-6f, normed);
    gpu->layer_norm(up(x), dln_w, dln_b, 1e-6f, h);
    const Tensor h_host = down(h);
    ASSERT_EQ(h_host.dtype(), DType::BF16);
    expect_close(h_host.converted(DType::F32), normed, 4e-3);
    // Products of the bf16 rows: exactly those values on both sides.
    const Tensor hx = h_host.converted(DType::F32);
    const Tensor w_ref = tensor_cores ? bf16_rounded(Tensor::from_f32(w.to_f32(), {m, k})) : w;
    Tensor want = ref.alloc(DType::F32, {n, m}), got = gpu->alloc(DType::F32, {n, m});
    ref.linear(hx, w_ref, &bias, want);
    gpu->linear(h, dw, &db, got);
    expect_close(down(got), want);
    const Tensor y0 = random_tensor(DType::F32, {n, m}, 66);
    Tensor acc = up(y0), sum = ref.alloc(DType::F32, {n, m});
    ref.add(y0, want, sum);
    gpu->linear_add(h, dw, &db, acc);
    expect_close(down(acc), sum);
    // linear into bf16 (the vision tower's q, k and v where their weights are not one stack).
    Tensor yb = gpu->alloc(DType::BF16, {n, m});
    gpu->linear(h, dw, &db, yb);
    expect_close(down(yb).converted(DType::F32), want, 4e-3);
    // linear_gelu into bf16.
    ref.gelu_tanh(want);
    Tensor g = gpu->alloc(DType::BF16, {n, m});
    gpu->linear_gelu(h, dw, &db, g);
    expect_close(down(g).converted(DType::F32), want, 5e-3);
  }
  // bf16 x against Q8_0 at 40 rows (where f32 x would take the int8 kernels): to cuBLAS too.
  {
    const Tensor wq = weight(DType::Q8_0, m, k, 68), xq = random_tensor(DType::F32, {40, k}, 69);
    const Tensor xq16 = xq.converted(DType::BF16);
    Tensor want = ref.alloc(DType::F32, {40, m}), got = gpu->alloc(DType::F32, {40, m});
    ref.linear(xq16.converted(DType::F32), bf16_rounded(Tensor::from_f32(wq.to_f32(), {m, k})), nullptr, want);
    gpu->linear(up(xq16), gpu->prepare_weight(wq), nullptr, got);
    expect_close(down(got), want);
  }
  // attention into bf16 (flash attention from 16 queries: whole tiles of keys or not; the
  // kernel below): the same path's f32 result, rounded.
  for (const int64_t nq : {5, 70, 128}) {
    SCOPED_TRACE("attention nq=" + std::to_string(nq));
    const AttentionShape shape{4, 4, 72, 0.125f};
    const Tensor q = random_tensor(DType::F32, {nq, 288}, 70), kt = random_tensor(DType::F32, {nq, 288}, 71);
    const Tensor vt = random_tensor(DType::F32, {nq, 288}, 72);
    std::vector<int32_t> pos(static_cast<size_t>(nq)), group(static_cast<size_t>(nq), -1);
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = int32_t(i);
    const AttentionMask mask{pos, group, pos, group, 0, false};
    Tensor a32 = gpu->alloc(DType::F32, {nq, 288}), a16 = gpu->alloc(DType::BF16, {nq, 288});
    gpu->attention(up(q), up(kt), up(vt), mask, shape, a32);
    gpu->attention(up(q), up(kt), up(vt), mask, shape, a16);
    expect_close(down(a16).converted(DType::F32), down(a32), 4e-3);
  }
  // Elsewhere bf16 activations are an error, not a misread.
  Tensor h16 = ref.alloc(DType::BF16, {2, k}), y = ref.alloc(DType::F32, {2, m});
  EXPECT_THROW(ref.layer_norm(random_tensor(DType::F32, {2, k}, 67), ln_w, ln_b, 1e-6f, h16), Error);
  EXPECT_THROW(ref.linear(h16, w, nullptr, y), Error);
  {
    const std::vector<int32_t> p2 = {0, 1}, g2 = {-1, -1};
    const Tensor q2 = random_tensor(DType::F32, {2, 72}, 73);
    Tensor o16 = ref.alloc(DType::BF16, {2, 72});
    EXPECT_THROW(ref.attention(q2, q2, q2, AttentionMask{p2, g2, p2, g2, 0, false}, AttentionShape{1, 1, 72, 1.0f}, o16),
                 Error);
  }
  auto cpu = test::backend_or_skip("cpu");
  ASSERT_TRUE(cpu);
  EXPECT_EQ(cpu->product_input_dtype(), DType::F32);
  EXPECT_THROW(cpu->linear(h16, cpu->prepare_weight(w), nullptr, y), Error);
}

// host_buffer (page-locked on "cuda", where pixel values are preprocessed into): from_host of
// it, or of a view of its rows, copies what it holds when called; the buffer may be
// rewritten (or freed) as soon as from_host returns.
TEST_F(CudaOps, HostBufferCopiesIn) {
  Tensor h = gpu->host_buffer(DType::F32, {2, 3, 64, 64});
  ASSERT_EQ(h.shape(), (Shape{2, 3, 64, 64}));
  const Tensor a = random_tensor(DType::F32, {2, 3, 64, 64}, 81), b = random_tensor(DType::F32, {2, 3, 64, 64}, 82);
  std::copy_n(a.data<const float>(), a.numel(), h.data<float>());
  const Tensor whole = gpu->from_host(h), second = gpu->from_host(h.rows(1, 1));
  std::copy_n(b.data<const float>(), b.numel(), h.data<float>());
  EXPECT_EQ(down(whole).to_f32(), a.to_f32());
  EXPECT_EQ(down(second).to_f32(), a.rows(1, 1).to_f32());
  EXPECT_EQ(down(gpu->from_host(h)).to_f32(), b.to_f32());
}

}  // namespace
}  // namespace unicorn
