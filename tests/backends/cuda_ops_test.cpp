// Every CUDA op against the scalar reference backend (ops/reference_backend.h) on random
// inputs (the vision tower's fused products: cuda_vision_ops_test.cpp): each weight format of
// the CUDA kernels through the decode (n <= 8) and prefill paths, widths that are not whole
// 32-value chunks, and the attention mask's cases.
// Skipped where no GPU is present (set UNICORN_REQUIRE_CUDA=1 on the GPU machine).
//
// Tolerance: relative 2e-5 of the output's scale for everything computed in f32 from the same
// values (accumulation order; the GPU's exp and tanh differ from libm by a few ulp: 1e-5 for
// GELU, 1e-4 for attention's exp). Weights in bf16 / f16 / block formats are compared after
// the same dequantization, so the format itself adds no error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "backends/cuda/cuda_backend.h"
#include "core/error.h"
#include "core/quant/nf4.h"
#include "core/quant/quant.h"
#include "ops/reference_backend.h"
#include "support/cuda_ops.h"
#include "support/devices.h"
#include "support/op_checks.h"

namespace unicorn {
namespace {

using test::bf16_rounded;
using test::CudaOps;
using test::expect_close;
using test::as_streamed;
using test::int8_rounded;
using test::random_tensor;
using test::weight;

// Products through both GPU paths: "cuda-f32" (f32 kernels for every n) against the reference
// on the same values; "cuda" (tensor cores from 16 rows; int8 x up to 64 rows over Q4_0 / Q8_0 /
// Q6_K: dp4a for one row, int8 tensor cores for more)
// against the reference on x and W rounded the same way, so only the accumulation order
// differs in either case.
TEST_F(CudaOps, LinearOverEveryWeightFormat) {
  struct Case {
    DType dtype;
    int64_t k;
  };
  auto f32_gpu = test::backend_or_skip("cuda-f32");
  ASSERT_TRUE(f32_gpu);
  for (Backend* b : {f32_gpu.get(), gpu.get()}) {
    const bool tensor_cores = b == gpu.get();
    // Q5_K stands for the formats the GPU takes as f16 (dequantized at upload).
    for (auto [dtype, k] : {Case{DType::F32, 96}, Case{DType::F16, 128}, Case{DType::BF16, 1152},
                            Case{DType::BF16, 588}, Case{DType::F16, 37}, Case{DType::Q4_0, 1152},
                            Case{DType::Q8_0, 320}, Case{DType::Q4_K, 512}, Case{DType::Q6_K, 768},
                            Case{DType::Q6_K, 4352},
                            Case{DType::NF4, 640}, Case{DType::Q5_K, 256}}) {
      for (int64_t n : {1, 3, 8, 9, 16, 33, 70}) {
        const int64_t m = 136;
        const Tensor w = weight(dtype, m, k, 2);
        const Tensor x = random_tensor(DType::F32, {n, k}, 1);
        const Tensor bias = random_tensor(DType::BF16, {m}, 3);
        SCOPED_TRACE(std::string(b->name()) + (tensor_cores ? " (tensor cores) " : " (f32) ") +
                     std::string(dtype_name(dtype)) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
        // Formats without a GPU kernel are dequantized to f16 at upload: the reference
        // multiplies those same f16 values.
        const bool via_f16 = dtype == DType::Q5_K;
        Tensor w_ref = via_f16 ? Tensor::from_f32(w.to_f32(), {m, k}).converted(DType::F16) : w;
        Tensor x_ref = x;
        // (one row over Q4_K and NF4: the streamed kernel, int8 x and NF4's levels as int8)
        const bool streamed_one = n == 1 && (dtype == DType::Q4_K || dtype == DType::NF4);
        const bool int8_x = tensor_cores && ((n <= 64 && (dtype == DType::Q4_0 || dtype == DType::Q8_0 ||
                                                           dtype == DType::Q6_K)) || streamed_one);
        if (int8_x) {
          x_ref = int8_rounded(x);
          if (streamed_one) w_ref = as_streamed(w);
        } else if (tensor_cores && n >= 16) {
          w_ref = bf16_rounded(w_ref);
          x_ref = bf16_rounded(x);
        }
        Tensor want = ref.alloc(DType::F32, {n, m});
        ref.linear(x_ref, w_ref, &bias, want);
        const Tensor dw = b->prepare_weight(w), db = b->prepare_weight(bias);
        Tensor got = b->alloc(DType::F32, {n, m});
        b->linear(b->from_host(x), dw, &db, got);
        expect_close(b->to_host(got), want);
        ref.linear(x_ref, w_ref, nullptr, want);
        b->linear(b->from_host(x), dw, nullptr, got);
        expect_close(b->to_host(got), want);
      }
    }
  }
}

// Prefill products dequantize a weight into bf16 panels of 64 MiB when free memory is short
// (emulated: all but 1 GiB more than now is held back): a matrix of 68 MB goes in two (16384
// rows, then 256), each into its columns of y. (Q4_K: Q4_0 would take the int8 path at 16 rows.)
TEST_F(CudaOps, LinearInPanels) {
  int64_t total = 0;
  const auto hold = cuda_limit_memory(0, cuda_memory_in_use(0, &total) + (int64_t(1) << 30));
  const int64_t m = 16640, k = 2048, n = 16;
  const Tensor w = weight(DType::Q4_K, m, k, 41);
  const Tensor x = random_tensor(DType::F32, {n, k}, 42);
  Tensor want = ref.alloc(DType::F32, {n, m});
  ref.linear(bf16_rounded(x), bf16_rounded(Tensor::from_f32(w.to_f32(), {m, k})), nullptr, want);
  const Tensor dw = gpu->prepare_weight(w);
  Tensor got = gpu->alloc(DType::F32, {n, m});
  gpu->linear(up(x), dw, nullptr, got);
  expect_close(down(got), want);
}

// NF4 stays as stored on the GPU (codes, 8-bit absmax with its nested scales): with and
// without double quantization, and blocks of 128, the f32 path matches the reference on the
// same weights (the absmax is rebuilt exactly as the CPU rebuilds it), and so does the streamed
// one-row kernel with x and the levels in int8.
TEST_F(CudaOps, Nf4AsStored) {
  auto f32_gpu = test::backend_or_skip("cuda-f32");
  ASSERT_TRUE(f32_gpu);
  const int64_t m = 200, k = 640;  // 2000 blocks of 64: 8 nested scales, the last one partial
  const Tensor f = random_tensor(DType::F32, {m, k}, 31, 0.1f).converted(DType::BF16);
  for (bool nested : {true, false}) {
    for (int64_t block : {64, 128}) {
      SCOPED_TRACE("nested=" + std::to_string(nested) + " block=" + std::to_string(block));
      Tensor w = nf4::quantize_tensor(f, nested);
      if (block != 64) {  // the same codes read with one absmax per 128 values
        auto st = std::make_shared<nf4::State>(nf4::state_of(w));
        st->blocksize = block;
        if (nested) st->qabsmax.resize(st->qabsmax.size() / 2);
        else st->absmax.resize(st->absmax.size() / 2);
        w = w.with_aux(st);
      }
      for (int64_t n : {1, 5}) {
        const Tensor x = random_tensor(DType::F32, {n, k}, 32);
        Tensor want = ref.alloc(DType::F32, {n, m});
        ref.linear(x, w, nullptr, want);
        const Tensor dw = f32_gpu->prepare_weight(w);
        Tensor got = f32_gpu->alloc(DType::F32, {n, m});
        f32_gpu->linear(f32_gpu->from_host(x), dw, nullptr, got);
        expect_close(f32_gpu->to_host(got), want);
        if (n != 1) continue;
        // One row: the streamed kernel (int8 x, the levels as int8), the absmax rebuilt as well.
        ref.linear(int8_rounded(x), as_streamed(w), nullptr, want);
        Tensor streamed = gpu->alloc(DType::F32, {n, m});
        gpu->linear(up(x), gpu->prepare_weight(w), nullptr, streamed);
        expect_close(down(streamed), want);
      }
    }
  }
}

// The FFN's gate/up/GELU step: fused for one row over Q4_0 / Q8_0 (int8 x), x quantized once for
// both tensor-core products of a batch (3 rows), composed else.
TEST_F(CudaOps, GateUpFusedAndComposed) {
  for (DType dtype : {DType::Q4_0, DType::Q8_0, DType::BF16}) {
    for (int64_t n : {1, 3}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " n=" + std::to_string(n));
      const int64_t k = 640, f = 200;
      const Tensor wg = weight(dtype, f, k, 21), wu = weight(dtype, f, k, 22);
      const Tensor x = random_tensor(DType::F32, {n, k}, 23);
      const bool int8_x = dtype != DType::BF16;
      const Tensor x_ref = int8_x ? int8_rounded(x) : x;
      Tensor want = ref.alloc(DType::F32, {n, f}), got = gpu->alloc(DType::F32, {n, f});
      ref.gate_up(x_ref, wg, wu, want);
      gpu->gate_up(up(x), gpu->prepare_weight(wg), gpu->prepare_weight(wu), got);
      expect_close(down(got), want, 1e-5);
    }
  }
}

// q, k and v in one launch for one row over Q4_0 / Q8_0 (int8 x), and for a decode batch of 5
// rows with x quantized once for the three tensor-core products; one by one else.
TEST_F(CudaOps, ThreeProductsOfOneRow) {
  for (DType dtype : {DType::Q4_0, DType::Q8_0, DType::BF16}) {
    for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 320}, {5, 320}, {1, 5376}}) {  // 5376: 27B's width
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " n=" + std::to_string(n) + " k=" + std::to_string(k));
      const Tensor w0 = weight(dtype, 72, k, 31), w1 = weight(dtype, 24, k, 32), w2 = weight(dtype, 40, k, 33);
      const Tensor x = random_tensor(DType::F32, {n, k}, 34);
      const Tensor x_ref = dtype != DType::BF16 ? int8_rounded(x) : x;
      Tensor a = ref.alloc(DType::F32, {n, 72}), b = ref.alloc(DType::F32, {n, 24}), c = ref.alloc(DType::F32, {n, 40});
      ref.linear3(x_ref, w0, w1, w2, a, b, c);
      Tensor ga = gpu->alloc(DType::F32, {n, 72}), gb = gpu->alloc(DType::F32, {n, 24}),
             gc = gpu->alloc(DType::F32, {n, 40});
      gpu->linear3(up(x), gpu->prepare_weight(w0), gpu->prepare_weight(w1), gpu->prepare_weight(w2), ga, gb, gc);
      expect_close(down(ga), a);
      expect_close(down(gb), b);
      expect_close(down(gc), c);
    }
  }
}

// Decode batches over Q4_0 / Q8_0 / Q6_K (2..64 rows of x, int8): the tensor-core kernel (the
// default) and the dp4a one (UNICORN_CUDA_MMA=0; Q4_0 / Q8_0) against the reference on the
// same int8 x. 65 blocks of k (k split over 4 blocks of 8 warps, shares of 3 and the last of 2),
// 200 weight rows (a partial tile), rows of x that fill no tile of 8 and all 8 tiles.
TEST_F(CudaOps, Int8RowsOnBothKernels) {
  const int64_t m = 200;
  for (const char* mma : {"1", "0"}) {
    test::ScopedEnv env("UNICORN_CUDA_MMA", mma);
    auto b = test::backend_or_skip("cuda");
    for (DType dtype : {DType::Q4_0, DType::Q8_0, DType::Q6_K}) {
      if (dtype == DType::Q6_K && std::string(mma) == "0") continue;  // no dp4a kernel for several rows
      const int64_t k = dtype == DType::Q6_K ? 9 * 256 : 65 * 32;
      const Tensor w = weight(dtype, m, k, 51);
      const Tensor dw = b->prepare_weight(w), bias = random_tensor(DType::F32, {m}, 52);
      const Tensor db = b->prepare_weight(bias);
      for (int64_t n : {2, 7, 24, 41, 64}) {
        SCOPED_TRACE(std::string("UNICORN_CUDA_MMA=") + mma + " " + std::string(dtype_name(dtype)) + " n=" + std::to_string(n));
        const Tensor x = random_tensor(DType::F32, {n, k}, 53 + uint32_t(n));
        Tensor want = ref.alloc(DType::F32, {n, m}), got = b->alloc(DType::F32, {n, m});
        ref.linear(int8_rounded(x), w, &bias, want);
        b->linear(b->from_host(x), dw, &db, got);
        expect_close(b->to_host(got), want);
      }
    }
  }
  test::ScopedEnv bad("UNICORN_CUDA_MMA", "yes");
  EXPECT_THROW(test::backend_or_skip("cuda"), Error);
}

TEST_F(CudaOps, EmbedOverEveryWeightFormat) {
  const std::vector<int32_t> ids = {0, 7, 3, 7, 15};
  for (DType dtype : {DType::F32, DType::BF16, DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::NF4}) {
    SCOPED_TRACE(std::string(dtype_name(dtype)));
    const Tensor table = weight(dtype, 16, 256, 5);
    Tensor want = ref.alloc(DType::F32, {5, 256}), got = gpu->alloc(DType::F32, {5, 256});
    ref.embed(table, ids, 2.5f, want);
    gpu->embed(gpu->prepare_weight(table), ids, 2.5f, got);
    expect_close(down(got), want);
  }
  // More ids than the launch carries in its arguments (EmbedIds::kInlineIds): uploaded.
  std::vector<int32_t> many(19);
  for (size_t i = 0; i < many.size(); ++i) many[i] = int32_t(i * 5 % 16);
  const Tensor table = weight(DType::Q8_0, 16, 256, 7);
  Tensor want_many = ref.alloc(DType::F32, {19, 256}), got_many = gpu->alloc(DType::F32, {19, 256});
  ref.embed(table, many, 0.5f, want_many);
  gpu->embed(gpu->prepare_weight(table), many, 0.5f, got_many);
  expect_close(down(got_many), want_many);
  const Tensor odd = weight(DType::BF16, 4, 37, 6);  // rows not whole chunks
  Tensor want = ref.alloc(DType::F32, {2, 37}), got = gpu->alloc(DType::F32, {2, 37});
  ref.embed(odd, std::vector<int32_t>{3, 1}, 1.0f, want);
  gpu->embed(gpu->prepare_weight(odd), std::vector<int32_t>{3, 1}, 1.0f, got);
  expect_close(down(got), want);
  EXPECT_THROW(gpu->embed(gpu->prepare_weight(odd), std::vector<int32_t>{4}, 1.0f, got), Error);
}

TEST_F(CudaOps, NormsAndElementwise) {
  // Widths up to 27B's 5376, the widest row the register kernels take (8192: 1024 threads)
  // and one past it (the strided kernels); LayerNorm a warp a row up to 1536 (16, 1152, 1536).
  for (int64_t d : {16, 37, 1152, 1536, 5376, 8192, 8200}) {
    SCOPED_TRACE(d);
    const Tensor x = random_tensor(DType::F32, {6, d}, 4, 3.0f);
    const Tensor w = random_tensor(DType::BF16, {d}, 5, 0.5f), b = random_tensor(DType::BF16, {d}, 6);
    const Tensor dw = gpu->prepare_weight(w), dbias = gpu->prepare_weight(b);
    Tensor want = ref.alloc(DType::F32, {6, d}), got = gpu->alloc(DType::F32, {6, d});
    ref.rms_norm(x, w, 1e-6f, want);
    gpu->rms_norm(up(x), dw, 1e-6f, got);
    expect_close(down(got), want);
    ref.layer_norm(x, w, b, 1e-6f, want);
    gpu->layer_norm(up(x), dw, dbias, 1e-6f, got);
    expect_close(down(got), want);
    // The fused residual step against its composition on the reference backend.
    const Tensor y = random_tensor(DType::F32, {6, d}, 15, 2.0f), w2 = random_tensor(DType::BF16, {d}, 16, 0.5f);
    for (const bool with_next : {false, true}) {
      Tensor x_ref = x.clone(), y_ref = y.clone(), next_ref = ref.alloc(DType::F32, {6, d});
      ref.residual_rms_norm(x_ref, y_ref, w, 1e-6f, with_next ? &w2 : nullptr, with_next ? &next_ref : nullptr);
      Tensor x_gpu = up(x), y_gpu = up(y), next_gpu = gpu->alloc(DType::F32, {6, d});
      const Tensor dw2 = gpu->prepare_weight(w2);
      gpu->residual_rms_norm(x_gpu, y_gpu, dw, 1e-6f, with_next ? &dw2 : nullptr, with_next ? &next_gpu : nullptr);
      expect_close(down(x_gpu), x_ref);
      if (with_next) expect_close(down(next_gpu), next_ref);
    }
    Tensor in_place = up(x);  // y may be x
    gpu->rms_norm(in_place, dw, 1e-6f, in_place);
    ref.rms_norm(x, w, 1e-6f, want);
    expect_close(down(in_place), want);

    const Tensor g = random_tensor(DType::F32, {6, d}, 7, 3.0f);
    ref.gelu_tanh_mul(g, x, want);
    gpu->gelu_tanh_mul(up(g), up(x), got);
    expect_close(down(got), want, 1e-5);
    Tensor g_ref = g.clone(), g_gpu = up(g);
    ref.gelu_tanh(g_ref);
    gpu->gelu_tanh(g_gpu);
    expect_close(down(g_gpu), g_ref, 1e-5);
    ref.add(g, x, want);
    gpu->add(up(g), up(x), got);
    expect_close(down(got), want);
  }
}

TEST_F(CudaOps, RopeAtLargePositions) {
  for (auto [hd, theta, factor] : {std::tuple{16, 10000.0, 1.0}, {256, 1e6, 8.0}, {128, 10000.0, 1.0}}) {
    const int64_t heads = 3, n = 5;
    const Tensor x = random_tensor(DType::F32, {n, heads * hd}, 8);
    const std::vector<int32_t> pos = {0, 1, 17, 4095, 131071};
    Tensor want = x.clone(), got = up(x);
    ref.rope(want, pos, hd, theta, factor);
    gpu->rope(got, pos, hd, theta, factor);
    // sin / cos of angles up to ~1e5 rad: f32 range reduction differs by an ulp of the angle.
    expect_close(down(got), want, 1e-4);
    // Fused with the per-head norm before it.
    const Tensor w = random_tensor(DType::BF16, {hd}, 17, 0.5f);
    Tensor fused_want = x.clone(), fused_got = up(x);
    ref.rms_norm_rope(fused_want, w, 1e-6f, pos, hd, theta, factor);
    gpu->rms_norm_rope(fused_got, gpu->prepare_weight(w), 1e-6f, pos, hd, theta, factor);
    expect_close(down(fused_got), fused_want, 1e-4);
    // q and k (another head count and weight) in one launch.
    const Tensor k = random_tensor(DType::F32, {n, 2 * hd}, 18), wk = random_tensor(DType::BF16, {hd}, 19, 0.5f);
    Tensor k_want = k.clone(), q_got = up(x), k_got = up(k);
    ref.rms_norm_rope(k_want, wk, 1e-6f, pos, hd, theta, factor);
    gpu->qk_norm_rope(q_got, gpu->prepare_weight(w), k_got, gpu->prepare_weight(wk), 1e-6f, pos, hd, theta, factor);
    expect_close(down(q_got), fused_want, 1e-4);
    expect_close(down(k_got), k_want, 1e-4);
  }
}

// 12 queries go through the attention kernel on either backend; 40 (prefill) on "cuda" through
// the flash attention on f16 tensor cores (head dim <= 128) or TF32 matrix products (head dim
// 256, or all with UNICORN_CUDA_FLASH=0): 10-bit mantissas, tolerance 5e-3; the kernel on
// "cuda-f32".
TEST_F(CudaOps, AttentionMaskCases) {
  struct Case {
    const char* what;
    int64_t heads, kv_heads, hd, window;
    bool causal;
  };
  auto f32_gpu = test::backend_or_skip("cuda-f32");
  ASSERT_TRUE(f32_gpu);
  std::unique_ptr<Backend> no_flash;
  {
    test::ScopedEnv off("UNICORN_CUDA_FLASH", "0");
    no_flash = test::backend_or_skip("cuda");
  }
  for (Backend* b : {f32_gpu.get(), gpu.get(), no_flash.get()}) {
    for (const int64_t nq : {12, 40}) {
      for (const Case& c : {Case{"causal GQA", 8, 2, 64, 0, true}, Case{"sliding window", 4, 4, 32, 5, true},
                            Case{"vision (bidirectional)", 4, 4, 72, 0, false},
                            Case{"gemma 4B head", 8, 4, 256, 0, true}}) {
        const bool products = b != f32_gpu.get() && nq >= 16;
        SCOPED_TRACE(std::string(c.what) + " nq=" + std::to_string(nq) +
                     (b == no_flash.get() ? " UNICORN_CUDA_FLASH=0" : "") + (products ? " (tensor cores)" : " (kernel)"));
        const int64_t nk = nq + 8;
        // Keys: slots 0..nq+3 hold positions 0..nq+3, the last 4 slots are empty; queries at
        // positions 4..nq+3, an image (group 0) at 6..9 that sees itself both ways.
        const auto NK = static_cast<size_t>(nk), NQ = static_cast<size_t>(nq);
        std::vector<int32_t> k_pos(NK, -1), k_group(NK, -1), q_pos(NQ, 0), q_group(NQ, -1);
        for (int32_t j = 0; j < nq + 4; ++j) k_pos[size_t(j)] = j;
        for (int32_t j = 6; j <= 9; ++j) k_group[size_t(j)] = 0;
        for (int32_t i = 0; i < nq; ++i) {
          q_pos[size_t(i)] = 4 + i;
          if (q_pos[size_t(i)] >= 6 && q_pos[size_t(i)] <= 9) q_group[size_t(i)] = 0;
        }
        AttentionMask mask{q_pos, q_group, k_pos, k_group, c.window, c.causal};
        const AttentionShape shape{c.heads, c.kv_heads, c.hd, 0.125f};
        const Tensor q = random_tensor(DType::F32, {nq, c.heads * c.hd}, 9);
        const Tensor k = random_tensor(DType::F32, {nk, c.kv_heads * c.hd}, 10);
        const Tensor v = random_tensor(DType::F32, {nk, c.kv_heads * c.hd}, 11);
        Tensor want = ref.alloc(DType::F32, {nq, c.heads * c.hd}), got = b->alloc(DType::F32, {nq, c.heads * c.hd});
        ref.attention(q, k, v, mask, shape, want);
        b->attention(b->from_host(q), b->from_host(k), b->from_host(v), mask, shape, got);
        expect_close(b->to_host(got), want, products ? 5e-3 : 1e-4);
        if (b == f32_gpu.get()) continue;
        // The default GPU backend keeps its KV cache in f16: rows written by scatter_rows
        // (rounded to f16), then read by attention; against the reference on the rounded values.
        ASSERT_EQ(b->kv_dtype(), DType::F16);
        const Tensor k16 = k.converted(DType::F16), v16 = v.converted(DType::F16);
        std::vector<int32_t> all(NK);
        for (size_t j = 0; j < NK; ++j) all[j] = int32_t(NK - 1 - j);  // reversed: the rows really move
        Tensor kc = b->alloc(DType::F16, {nk, c.kv_heads * c.hd}), vc = b->alloc(DType::F16, {nk, c.kv_heads * c.hd});
        Tensor k_rev = ref.alloc(DType::F32, k.shape()), v_rev = ref.alloc(DType::F32, v.shape());
        ref.gather_rows(k, all, k_rev);  // scattering the reversed rows puts each back in place
        ref.gather_rows(v, all, v_rev);
        b->scatter_rows(b->from_host(k_rev), all, kc);
        b->scatter_rows(b->from_host(v_rev), all, vc);
        expect_close(b->to_host(kc).converted(DType::F32), k16.converted(DType::F32), 0);
        ref.attention(q, k16.converted(DType::F32), v16.converted(DType::F32), mask, shape, want);
        b->attention(b->from_host(q), kc, vc, mask, shape, got);
        expect_close(b->to_host(got), want, products ? 5e-3 : 1e-4);
      }
    }
  }
  // The exact path keeps the cache in f32; the CPU and the reference take only f32.
  EXPECT_EQ(f32_gpu->kv_dtype(), DType::F32);
  {
    test::ScopedEnv kv("UNICORN_CUDA_KV", "f32");
    EXPECT_EQ(test::backend_or_skip("cuda")->kv_dtype(), DType::F32);
  }
  const Tensor q1 = random_tensor(DType::F32, {1, 64}, 12), k1 = random_tensor(DType::F16, {3, 64}, 13);
  const std::vector<int32_t> p1 = {2}, g1 = {-1}, kp = {0, 1, 2}, kg = {-1, -1, -1};
  Tensor o1 = ref.alloc(DType::F32, {1, 64});
  EXPECT_THROW(ref.attention(q1, k1, k1, AttentionMask{p1, g1, kp, kg, 0, true}, AttentionShape{1, 1, 64, 1.0f}, o1),
               Error);
}

// Attention of 16+ queries on the f16 tensor cores (flash attention, the default):
// against the reference on the values the kernel multiplies (q * scale, k and v rounded to
// f16), so what is left is the probabilities' f16 rounding and the order of the sums. Several
// query blocks and key tiles, partial ones, GQA, sliding window, the image mask, empty slots,
// every key visible (the unmasked kernel, whole tiles or not);
// f32 and f16 KV, and q, k, v all bf16 (the vision tower's on a backend with bf16 product
// inputs: Hopper's wgmma kernel multiplies them so, bf16 probabilities too: 8e-3; elsewhere
// they are widened). The reference refuses bf16 q, k and v.
TEST_F(CudaOps, FlashAttentionOnRoundedInputs) {
  std::unique_ptr<Backend> flash, no_wgmma;  // (on a Hopper GPU: the vision cases on both kernels)
  {
    test::ScopedEnv on("UNICORN_CUDA_FLASH", "1");
    flash = test::backend_or_skip("cuda");
    test::ScopedEnv off("UNICORN_CUDA_WGMMA", "0");
    no_wgmma = test::backend_or_skip("cuda");
  }
  struct Case {
    const char* what;
    int64_t heads, kv_heads, hd, nq, window;
    bool causal, every_key;  // every_key: no empty slot, as many keys as queries (or `keys`)
    int64_t keys = 0;
  };
  auto f16_rounded = [](const Tensor& t) { return t.converted(DType::F16).converted(DType::F32); };
  for (const Case& c : {Case{"vision 72", 4, 4, 72, 200, 0, false, false},
                        Case{"vision 72, every key (the unmasked kernel)", 4, 4, 72, 192, 0, false, true},
                        Case{"vision 72, every key, three blocks of two groups", 3, 3, 72, 576, 0, false, true},
                        Case{"vision 72, every key, whole pairs of tiles (Hopper: wgmma)", 2, 2, 72, 640, 0, false, true},
                        Case{"vision 72, every key, a part query block (wgmma)", 2, 2, 72, 100, 0, false, true, 256},
                        Case{"every key, 64 not whole tiles", 2, 2, 64, 100, 0, false, true},
                        Case{"every key 64, GQA (two query tiles a warp)", 4, 2, 64, 192, 0, false, true},
                        Case{"every key 128 (one query tile a warp)", 2, 2, 128, 128, 0, false, true},
                        Case{"causal GQA 128", 8, 2, 128, 100, 0, true, false},
                        Case{"window 64", 4, 2, 64, 70, 20, true, false},
                        Case{"small heads 32", 2, 1, 32, 17, 0, true, false}}) {
    for (const DType kv : {DType::F32, DType::F16, DType::BF16}) {
      for (Backend* b : {flash.get(), no_wgmma.get()}) {
        const bool kv16 = kv == DType::F16, bf16 = kv == DType::BF16;
        SCOPED_TRACE(std::string(c.what) + (bf16 ? " bf16 q, k, v" : kv16 ? " f16 KV" : " f32 KV") +
                     (b == flash.get() ? "" : " UNICORN_CUDA_WGMMA=0"));
        const int64_t nk = c.every_key ? (c.keys ? c.keys : c.nq) : c.nq + 30, empty = c.every_key ? 0 : 4;
        const auto NK = static_cast<size_t>(nk), NQ = static_cast<size_t>(c.nq);
        // Slots 0..nk-5 hold positions 0..nk-5, the last 4 are empty (none for every_key);
        // queries at the last nq positions; an image (group 0) at positions 40..47.
        std::vector<int32_t> k_pos(NK, -1), k_group(NK, -1), q_pos(NQ, 0), q_group(NQ, -1);
        for (int32_t j = 0; j < nk - empty; ++j) {
          k_pos[size_t(j)] = j;
          if (j >= 40 && j <= 47) k_group[size_t(j)] = 0;
        }
        for (int32_t i = 0; i < c.nq; ++i) {
          q_pos[size_t(i)] = int32_t(nk - empty - c.nq) + i;
          if (q_pos[size_t(i)] >= 40 && q_pos[size_t(i)] <= 47) q_group[size_t(i)] = 0;
        }
        const AttentionMask mask{q_pos, q_group, k_pos, k_group, c.window, c.causal};
        const float scale = 0.125f;
        auto input = [&](int64_t rows, int64_t width, uint32_t seed) {
          const Tensor t = random_tensor(DType::F32, {rows, width}, seed);
          return bf16 ? t.converted(DType::BF16).converted(DType::F32) : t;
        };
        const Tensor q = input(c.nq, c.heads * c.hd, 21), k = input(nk, c.kv_heads * c.hd, 22);
        const Tensor v = input(nk, c.kv_heads * c.hd, 23);
        std::vector<float> qs = q.to_f32();
        for (float& x : qs) x *= scale;
        Tensor want = ref.alloc(DType::F32, {c.nq, c.heads * c.hd});
        Tensor got = b->alloc(DType::F32, {c.nq, c.heads * c.hd});
        ref.attention(f16_rounded(Tensor::from_f32(qs, q.shape())), f16_rounded(k), f16_rounded(v), mask,
                      AttentionShape{c.heads, c.kv_heads, c.hd, 1.0f}, want);
        const DType in = bf16 ? DType::BF16 : DType::F32;
        const Tensor dk = b->from_host(k.converted(kv16 ? DType::F16 : in));
        const Tensor dv = b->from_host(v.converted(kv16 ? DType::F16 : in));
        const AttentionShape shape{c.heads, c.kv_heads, c.hd, scale};
        b->attention(b->from_host(q.converted(in)), dk, dv, mask, shape, got);
        expect_close(b->to_host(got), want, bf16 ? 8e-3 : 2e-3);
        if (bf16) {
          Tensor o = ref.alloc(DType::F32, want.shape());
          EXPECT_THROW(ref.attention(q.converted(in), k.converted(in), v.converted(in), mask, shape, o), Error);
        }
      }
    }
  }
}

// A decode batch: every sequence's KV writes and attention in one launch each, against the
// same jobs one by one (Backend::attention_jobs: scatter_rows and attention per sequence), and
// each job alone through attention_jobs (K and V written in one launch).
// ring > 0: the keys in a ring buffer of that many slots (position p at slot p % ring, as a
// sliding window's cache), and the mask's key span (key_first / key_count) on the jobs the GPU
// runs: the window's slots only, wrapping past the ring's end (the reference walks every slot).
struct BatchSeq {
  int64_t len, n_new, window, ring = 0;
};
void check_attention_batch(Backend& gpu, Backend& ref, const AttentionShape& shape, std::span<const BatchSeq> seqs,
                           int64_t cap, bool holes_in_last) {
  const int64_t kw = shape.n_kv_heads * shape.head_dim, qw = shape.n_heads * shape.head_dim;
  const size_t n_seqs = seqs.size();
  const int64_t empty_from = 200, empty_to = 210;  // of the last sequence
  const DType kv = gpu.kv_dtype();
  auto up = [&](const Tensor& t) { return gpu.from_host(t); };
  auto down = [&](const Tensor& t) { return gpu.to_host(t); };
  std::vector<Tensor> caches[3];  // [0]: batched, [1]: one by one, [2]: alone; k and v per sequence
  std::vector<std::vector<int32_t>> slots, q_pos, q_group, k_pos, k_group;
  for (const BatchSeq& sq : seqs) {
    const bool holes = holes_in_last && &sq == &seqs.back();
    for (int kv_i = 0; kv_i < 2; ++kv_i) {
      std::vector<float> init = random_tensor(DType::F32, {cap, kw}, uint32_t(50 + sq.len + kv_i)).to_f32();
      if (holes) std::fill(init.begin() + empty_from * kw, init.begin() + empty_to * kw, std::nanf(""));
      const Tensor host = Tensor::from_f32(init, {cap, kw}).converted(kv);
      for (auto& c : caches) c.push_back(up(host));
    }
    std::vector<int32_t> sl, qp, qg, kp(size_t(cap), -1), kg(size_t(cap), -1);
    const int64_t slots_of = sq.ring > 0 ? sq.ring : cap;
    for (int64_t p = 0; p < sq.len + sq.n_new; ++p)
      kp[size_t(p % slots_of)] = holes && p >= empty_from && p < empty_to ? -1 : int32_t(p);
    for (int64_t t = 0; t < sq.n_new; ++t) {
      sl.push_back(int32_t((sq.len + t) % slots_of));
      qp.push_back(int32_t(sq.len + t));
      qg.push_back(-1);
    }
    slots.push_back(sl), q_pos.push_back(qp), q_group.push_back(qg), k_pos.push_back(kp), k_group.push_back(kg);
  }
  int64_t n = 0;
  for (const BatchSeq& sq : seqs) n += sq.n_new;
  const Tensor q = up(random_tensor(DType::F32, {n, qw}, 60)), k = up(random_tensor(DType::F32, {n, kw}, 61)),
               v = up(random_tensor(DType::F32, {n, kw}, 62));
  Tensor outs[3] = {gpu.alloc(DType::F32, {n, qw}), gpu.alloc(DType::F32, {n, qw}), gpu.alloc(DType::F32, {n, qw})};
  for (int way = 0; way < 3; ++way) {
    std::vector<AttentionJob> jobs(n_seqs);
    int64_t off = 0;
    for (size_t i = 0; i < n_seqs; ++i) {
      const BatchSeq& sq = seqs[i];
      AttentionJob& j = jobs[i];
      j.q = q.rows(off, sq.n_new);
      j.k_new = k.rows(off, sq.n_new);
      j.v_new = v.rows(off, sq.n_new);
      j.slots = slots[i];
      j.k_cache = &caches[way][2 * i];
      j.v_cache = &caches[way][2 * i + 1];
      j.used = sq.ring > 0 ? std::min(sq.ring, sq.len + sq.n_new) : sq.len + sq.n_new;
      j.mask = AttentionMask{q_pos[i], q_group[i], std::span(k_pos[i]).first(size_t(j.used)),
                             std::span(k_group[i]).first(size_t(j.used)), sq.window, true};
      if (sq.ring > 0) {
        const int64_t from = std::max<int64_t>(0, sq.len - sq.window + 1);
        j.mask.key_first = from % sq.ring;
        j.mask.key_count = sq.len + sq.n_new - from;
      }
      j.out = outs[way].rows(off, sq.n_new);
      off += sq.n_new;
    }
    if (way == 0)
      gpu.attention_jobs(jobs, shape);
    else if (way == 1)
      gpu.Backend::attention_jobs(jobs, shape);
    else
      for (AttentionJob& j : jobs) gpu.attention_jobs(std::span(&j, 1), shape);
  }
  // Alone, a job runs the same attention kernel as one by one: the same bits.
  expect_close(down(outs[2]), down(outs[1]), 0);
  for (size_t c = 0; c < caches[1].size(); ++c) expect_close(down(caches[2][c]), down(caches[1][c]), 0);
  // The batch splits each sequence's keys otherwise than one sequence alone (or walks them in
  // one block): the same sums in another order (f32 rounding); the caches' rows are the same bits.
  expect_close(down(outs[0]), down(outs[1]), 1e-6);
  for (size_t c = 0; c < caches[0].size(); ++c) expect_close(down(caches[0][c]), down(caches[1][c]), 0);
  // And against the reference on the cache contents (f16 on the GPU: the reference reads the
  // same rounded values back from the batched caches).
  int64_t off = 0;
  for (size_t i = 0; i < n_seqs; ++i) {
    const BatchSeq& sq = seqs[i];
    const int64_t used = sq.ring > 0 ? std::min(sq.ring, sq.len + sq.n_new) : sq.len + sq.n_new;
    const Tensor kc = down(caches[0][2 * i]).converted(DType::F32).rows(0, used);
    const Tensor vc = down(caches[0][2 * i + 1]).converted(DType::F32).rows(0, used);
    Tensor want = ref.alloc(DType::F32, {sq.n_new, qw});
    ref.attention(down(q).rows(off, sq.n_new), kc, vc,
                  AttentionMask{q_pos[i], q_group[i], std::span(k_pos[i]).first(size_t(used)),
                                std::span(k_group[i]).first(size_t(used)), sq.window, true},
                  shape, want);
    expect_close(down(outs[0]).rows(off, sq.n_new), want, 1e-4);
    off += sq.n_new;
  }
}

// Sequences of different lengths, one with two queries, sliding window on two; caches whose
// keys the batch splits over several blocks a sequence (whole splits outside the window, their
// partial sums empty, then combined), and empty slots among the used rows holding NaN (never
// read into a sum). Then a head dim of no whole lanes (96: one block per (query, head) walks
// every key), and a batch of enough sequences to fill the GPU unsplit (each block writes its
// output itself; 36 x 16 heads = 576 blocks, at least 4 a multiprocessor up to 144 of them).
TEST_F(CudaOps, AttentionJobsBatched) {
  // (ring sequences: a window of 300 in a ring of 340 at 1100 / 1101 positions, the span
  // wrapping; of 50 in a ring of 80 not yet full; of 90 in 100 at 1 + 2 positions)
  const BatchSeq seqs[] = {{5, 1, 0},         {33, 2, 0},       {17, 1, 4},  {1100, 1, 300, 340},
                           {30, 1, 50, 80},   {1, 2, 90, 100},  {1300, 1, 300}, {700, 1, 0}};
  {
    SCOPED_TRACE("split keys");
    check_attention_batch(*gpu, ref, {8, 2, 64, 0.125f}, seqs, 1400, true);
  }
  {
    SCOPED_TRACE("head dim 96");
    check_attention_batch(*gpu, ref, {8, 2, 96, 0.1f}, seqs, 1400, true);
  }
  std::vector<BatchSeq> many;
  for (int i = 0; i < 36; ++i) many.push_back({1 + (i * 37) % 300, 1, i % 3 == 0 ? 64 : 0, i % 3 == 0 ? 80 : 0});
  SCOPED_TRACE("36 sequences");
  check_attention_batch(*gpu, ref, {16, 4, 128, 0.09f}, many, 320, false);
}

// One sequence's step through qk_norm_rope_attention (UNICORN_CUDA_FUSE_KV): on "cuda" one query's
// norms, RoPE and K/V writes ride in the attention kernel, three queries' (a short prompt
// chunk) K/V writes in the q/k norm + RoPE kernel; against the same step op by op (Backend's
// default: qk_norm_rope, then attention_jobs with its own K/V kernel): the caches and the
// output (for three queries q and k too) the same bits, or within rounding where the attention
// kernel norms; the normed rows against the reference, and the cache rows written (f16 on the
// GPU) against them; cache rows beyond untouched.
TEST_F(CudaOps, QkNormRopeAttentionWritesTheCache) {
  const int64_t hd = 128, cap = 300, len = 257, kw = 4 * hd, qw = 8 * hd;
  const AttentionShape shape{8, 4, hd, 0.088f};
  const Tensor wq = random_tensor(DType::BF16, {hd}, 70, 0.5f), wk = random_tensor(DType::BF16, {hd}, 71, 0.5f);
  const Tensor dwq = gpu->prepare_weight(wq), dwk = gpu->prepare_weight(wk);
  const DType kv = gpu->kv_dtype();
  for (int64_t n_new : {1, 3}) {
    SCOPED_TRACE(n_new);
    const int64_t used = len + n_new;
    std::vector<int32_t> slots, q_pos, q_group, k_pos(size_t(cap), -1), k_group(size_t(cap), -1);
    for (int64_t p = 0; p < used; ++p) k_pos[size_t(p)] = int32_t(p);
    for (int64_t t = 0; t < n_new; ++t) {
      slots.push_back(int32_t(len + t));
      q_pos.push_back(int32_t(len + t));
      q_group.push_back(-1);
    }
    const Tensor q0 = random_tensor(DType::F32, {n_new, qw}, 72), k0 = random_tensor(DType::F32, {n_new, kw}, 73),
                 v0 = random_tensor(DType::F32, {n_new, kw}, 74);
    const Tensor cache0 = random_tensor(DType::F32, {cap, kw}, 75).converted(kv);
    Tensor q[2], k[2], k_cache[2], v_cache[2], out[2];
    for (int way = 0; way < 2; ++way) {
      q[way] = up(q0), k[way] = up(k0), k_cache[way] = up(cache0), v_cache[way] = up(cache0);
      out[way] = gpu->alloc(DType::F32, {n_new, qw});
      AttentionJob j;
      j.q = q[way], j.k_new = k[way], j.v_new = up(v0), j.slots = slots;
      j.k_cache = &k_cache[way], j.v_cache = &v_cache[way], j.used = used, j.out = out[way];
      j.mask = AttentionMask{q_pos, q_group, std::span(k_pos).first(size_t(used)),
                             std::span(k_group).first(size_t(used)), 0, true};
      const QkNorms norms{dwq, dwk, 1e-6f, q_pos, hd, 10000.0, 1.0};
      if (way == 0)
        gpu->qk_norm_rope_attention(q[way], k[way], norms, std::span(&j, 1), shape);
      else
        gpu->Backend::qk_norm_rope_attention(q[way], k[way], norms, std::span(&j, 1), shape);
    }
    // One query: the split attention kernel norms q and the new key itself (q and k stay raw;
    // its sum of squares goes in another order, so the cache's new row may differ in the last
    // bit, and f16's rounding of it by one step). More: the q/k norm kernel writes the cache,
    // bit-equal to op by op.
    const bool in_attention = n_new == 1;
    for (Tensor* t : {k_cache, v_cache, out}) expect_close(down(t[0]), down(t[1]), in_attention ? 1e-3 : 0);
    const int way_normed = in_attention ? 1 : 0;  // (op by op norms q and k in place)
    if (!in_attention)
      for (Tensor* t : {q, k}) expect_close(down(t[0]), down(t[1]), 0);
    Tensor q_want = q0.clone(), k_want = k0.clone();
    ref.qk_norm_rope(q_want, wq, k_want, wk, 1e-6f, q_pos, hd, 10000.0, 1.0);
    expect_close(down(q[way_normed]), q_want, 1e-4);
    expect_close(down(k[way_normed]), k_want, 1e-4);
    const double rounding = kv == DType::F16 ? 1e-3 : 1e-4;
    expect_close(down(k_cache[0]).converted(DType::F32).rows(len, n_new), k_want, rounding);
    expect_close(down(v_cache[0]).converted(DType::F32).rows(len, n_new), v0, rounding);
    expect_close(down(k_cache[0]).converted(DType::F32).rows(0, len), cache0.converted(DType::F32).rows(0, len), 0);
  }
  // The comparison above would pass if the backend fell back to Backend's op by op: a profiled
  // backend names the ops it timed (on stderr when it goes away), and the fused launch of one
  // query (norms, K/V writes and attention) is one op of its own.
  test::ScopedEnv profile("UNICORN_CUDA_PROFILE", "1");
  auto b = test::backend_or_skip("cuda");
  const std::vector<int32_t> slots = {int32_t(len)}, q_pos = {int32_t(len)}, q_group = {-1};
  std::vector<int32_t> k_pos(size_t(len + 1)), k_group(size_t(len + 1), -1);
  for (int64_t p = 0; p <= len; ++p) k_pos[size_t(p)] = int32_t(p);
  Tensor q = b->from_host(random_tensor(DType::F32, {1, qw}, 76)), k = b->from_host(random_tensor(DType::F32, {1, kw}, 77));
  const Tensor cache_host = random_tensor(DType::F32, {cap, kw}, 78).converted(kv);
  Tensor k_cache = b->from_host(cache_host), v_cache = b->from_host(cache_host);
  AttentionJob j;
  j.q = q, j.k_new = k, j.v_new = b->from_host(random_tensor(DType::F32, {1, kw}, 79)), j.slots = slots;
  j.k_cache = &k_cache, j.v_cache = &v_cache, j.used = len + 1, j.out = b->alloc(DType::F32, {1, qw});
  j.mask = AttentionMask{q_pos, q_group, k_pos, k_group, 0, true};
  testing::internal::CaptureStderr();
  b->qk_norm_rope_attention(q, k, QkNorms{b->prepare_weight(wq), b->prepare_weight(wk), 1e-6f, q_pos, hd, 10000.0, 1.0},
                            std::span(&j, 1), shape);
  j = AttentionJob{}, q = k = k_cache = v_cache = Tensor{};
  b.reset();
  const std::string report = testing::internal::GetCapturedStderr();
  EXPECT_NE(report.find("qk_norm_rope + attention"), std::string::npos) << report;
  EXPECT_EQ(report.find("scatter_rows"), std::string::npos) << report;
  EXPECT_EQ(report.find("KV writes"), std::string::npos) << report;
}

TEST_F(CudaOps, RowsPatchesAndPooling) {
  const Tensor src = random_tensor(DType::F32, {3, 40}, 12);
  const std::vector<int32_t> rows = {5, 0, 2};
  Tensor want = ref.alloc(DType::F32, {8, 40}), got = gpu->alloc(DType::F32, {8, 40});
  ref.scatter_rows(src, rows, want);
  gpu->scatter_rows(up(src), rows, got);
  expect_close(down(got), want, 0);
  Tensor back_want = ref.alloc(DType::F32, {3, 40}), back_got = gpu->alloc(DType::F32, {3, 40});
  ref.gather_rows(want, rows, back_want);
  gpu->gather_rows(got, rows, back_got);
  expect_close(down(back_got), back_want, 0);
  expect_close(down(back_got), src, 0);

  const Tensor image = random_tensor(DType::F32, {3, 56, 56}, 13);
  Tensor p_want = ref.alloc(DType::F32, {16, 3 * 14 * 14}), p_got = gpu->alloc(DType::F32, {16, 3 * 14 * 14});
  ref.patchify(image, 14, p_want);
  gpu->patchify(up(image), 14, p_got);
  expect_close(down(p_got), p_want, 0);

  const Tensor grid = random_tensor(DType::F32, {64, 24}, 14);
  Tensor a_want = ref.alloc(DType::F32, {4, 24}), a_got = gpu->alloc(DType::F32, {4, 24});
  ref.avg_pool_grid(grid, 8, 4, a_want);
  gpu->avg_pool_grid(up(grid), 8, 4, a_got);
  expect_close(down(a_got), a_want);
}

TEST_F(CudaOps, ShapeErrorsAreErrors) {
  const Tensor x = up(random_tensor(DType::F32, {2, 8}, 1));
  const Tensor w = gpu->prepare_weight(random_tensor(DType::BF16, {4, 9}, 2));
  Tensor y = gpu->alloc(DType::F32, {2, 4});
  EXPECT_THROW(gpu->linear(x, w, nullptr, y), Error);
  EXPECT_THROW(gpu->to_host(w), Error);  // a prepared weight has the GPU's layout
}

TEST(CudaDevices, ListingAndErrors) {
  std::string why;
  const auto gpus = cuda_devices(&why);
  if (gpus.empty()) {
    EXPECT_FALSE(why.empty());  // always a reason
    EXPECT_THROW(create_cuda_backend(0), Error);
    return;
  }
  for (const auto& d : gpus) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.total_memory, 0);
    EXPECT_GE(d.cc_major, 5);
  }
  EXPECT_THROW(create_cuda_backend(int(gpus.size())), Error);  // one past the last
}

}  // namespace
}  // namespace unicorn
