// CUDA decode ops: the streamed one-row products at the real models' widths, and ops fused
// across what the model calls one by one, against the reference backend (its composition of the
// same ops). Skipped where no GPU is present (set
// UNICORN_REQUIRE_CUDA=1 on the GPU machine). Tolerance as cuda_ops_test.cpp: 2e-5 of the
// output's scale (accumulation order), x rounded to int8 as the GPU's decode products (up to 64
// rows) take it.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "support/cuda_ops.h"
#include "support/devices.h"
#include "support/op_checks.h"

namespace unicorn {
namespace {

using namespace test;  // CudaOps, weight, int8_rounded, random_tensor, expect_close

// CUDA backends whose streamed products run in blocks of 16 warps and of 8, named so.
std::vector<std::pair<std::string, std::unique_ptr<Backend>>> by_stream_warps() {
  std::vector<std::pair<std::string, std::unique_ptr<Backend>>> backends;
  for (const char* warps : {"16", "8"}) {
    ScopedEnv w("UNICORN_CUDA_STREAM_WARPS", warps);
    backends.emplace_back(std::string(warps) + " warps", backend_or_skip("cuda"));
  }
  return backends;
}

// One row of x against big Q4_0 / Q8_0 / Q6_K matrices (the streamed kernel, cuda_matvec.cu, in
// blocks of 16 warps and of 8; Q6_K is the LM head's format, by halves of its super-blocks):
// more rows than the GPU has warps, so each warp walks several rows with the next row's loads in
// flight, and rows split between warps; widths of 1, 3 and a partial number of steps a row
// (21504: 27B's FFN width; it and 16416, 513 chunks, have more chunks of x than a block has
// threads to quantize them); q/k/v whose parts meet inside a warp's run; gate/up with GELU. With
// bias on the plain product. The same on the block-per-rows kernels (UNICORN_CUDA_STREAM=0, also
// the fallback for wide rows).
TEST_F(CudaOps, StreamedRowsOfBigMatrices) {
  // The three kernels' backends, each against the same weights and reference (made once).
  std::vector<std::pair<std::string, std::unique_ptr<Backend>>> backends;
  for (const char* stream : {"1", "8", "0"}) {
    test::ScopedEnv env("UNICORN_CUDA_STREAM", stream == std::string("0") ? "0" : "1");
    test::ScopedEnv warps("UNICORN_CUDA_STREAM_WARPS", stream == std::string("8") ? "8" : "16");
    backends.emplace_back(stream == std::string("1")   ? "streamed, 16 warps"
                          : stream == std::string("8") ? "streamed, 8 warps"
                                                       : "UNICORN_CUDA_STREAM=0",
                          test::backend_or_skip("cuda"));
  }
  for (DType dtype : {DType::Q4_0, DType::Q8_0, DType::Q6_K, DType::Q4_K, DType::NF4}) {
    for (int64_t k : {int64_t(5376), int64_t(21504), int64_t(4128), int64_t(16416)}) {
      if ((dtype == DType::Q6_K || dtype == DType::Q4_K) && k % 256 != 0) continue;
      if (dtype == DType::NF4 && k % 64 != 0) continue;
      // Q4_K and NF4 stream only in the streamed kernel (int8 x, NF4's levels as int8); the
      // block-per-rows kernels multiply them in f32.
      const bool int8_only_streamed = dtype == DType::Q4_K || dtype == DType::NF4;
      const int64_t m = 4999;
      const Tensor w = weight(dtype, m, k, 61), bias = random_tensor(DType::F32, {m}, 62);
      const Tensor x = random_tensor(DType::F32, {1, k}, 63);
      struct Want {
        Tensor linear, a, b, c, gate_up;
      };
      const bool parts = k == 5376;  // q/k/v and gate/up too
      Tensor w2, w3, wu;
      if (parts) w2 = weight(dtype, 2001, k, 64), w3 = weight(dtype, 1501, k, 65), wu = weight(dtype, m, k, 66);
      auto reference = [&](bool streamed) {
        const Tensor x_ref = streamed ? int8_rounded(x) : x;
        auto as = [&](const Tensor& t) { return streamed ? as_streamed(t) : t; };
        Want r;
        r.linear = ref.alloc(DType::F32, {1, m});
        ref.linear(x_ref, as(w), &bias, r.linear);
        if (parts) {
          r.a = ref.alloc(DType::F32, {1, m}), r.b = ref.alloc(DType::F32, {1, 2001}), r.c = ref.alloc(DType::F32, {1, 1501});
          ref.linear3(x_ref, as(w), as(w2), as(w3), r.a, r.b, r.c);
          r.gate_up = ref.alloc(DType::F32, {1, m});
          ref.gate_up(x_ref, as(w), as(wu), r.gate_up);
        }
        return r;
      };
      const Want streamed_want = reference(true);
      Want plain_want;
      if (int8_only_streamed) plain_want = reference(false);
      for (const auto& [what, b] : backends) {
        SCOPED_TRACE(what + " " + std::string(dtype_name(dtype)) + " k=" + std::to_string(k));
        const Want& wanted = int8_only_streamed && what == "UNICORN_CUDA_STREAM=0" ? plain_want : streamed_want;
        const Tensor& want = wanted.linear;
        const Tensor &ra = wanted.a, &rb = wanted.b, &rc = wanted.c, &g_want = wanted.gate_up;
        Tensor got = b->alloc(DType::F32, {1, m});
        const Tensor db = b->prepare_weight(bias), dw = b->prepare_weight(w);
        b->linear(b->from_host(x), dw, &db, got);
        expect_close(b->to_host(got), want);
        if (!parts) continue;
        Tensor ga = b->alloc(DType::F32, {1, m}), gb = b->alloc(DType::F32, {1, 2001}),
               gc = b->alloc(DType::F32, {1, 1501}), g_got = b->alloc(DType::F32, {1, m});
        b->linear3(b->from_host(x), dw, b->prepare_weight(w2), b->prepare_weight(w3), ga, gb, gc);
        expect_close(b->to_host(ga), ra);
        expect_close(b->to_host(gb), rb);
        expect_close(b->to_host(gc), rc);
        b->gate_up(b->from_host(x), dw, b->prepare_weight(wu), g_got);
        expect_close(b->to_host(g_got), g_want, 1e-5);
      }
    }
  }
  // Gate / up rows of two steps, one or two a block of 16 warps (200 rows on up to 199
  // multiprocessors): each row split between two warps, so its sums meet in shared memory from
  // zero in blocks of one row too.
  for (DType dtype : {DType::Q4_0, DType::Q8_0}) {
    const int64_t m = 200, k = 5376;
    const Tensor wg = weight(dtype, m, k, 67), wu = weight(dtype, m, k, 68);
    const Tensor x = random_tensor(DType::F32, {1, k}, 69);
    Tensor want = ref.alloc(DType::F32, {1, m});
    ref.gate_up(int8_rounded(x), wg, wu, want);
    for (const auto& [what, b] : backends) {
      SCOPED_TRACE(what + " gate/up of 200 rows " + std::string(dtype_name(dtype)));
      Tensor got = b->alloc(DType::F32, {1, m});
      b->gate_up(b->from_host(x), b->prepare_weight(wg), b->prepare_weight(wu), got);
      expect_close(b->to_host(got), want, 1e-5);
    }
  }
  for (auto [name, value] : {std::pair{"UNICORN_CUDA_STREAM", "on"}, {"UNICORN_CUDA_STREAM_WARPS", "12"}}) {
    test::ScopedEnv bad(name, value);
    EXPECT_THROW(test::backend_or_skip("cuda"), Error) << name;
  }
}

// linear_residual_rms_norm: one row over Q4_0 / Q8_0 / Q4_K / NF4 rows wider than 256 chunks is multiplied
// in column parts (2 for 320 and 480 chunks, 3 for 27B's 672) that the residual norm adds
// (its register kernel up to 8192 values, the strided one past it); 16- and 8-warp blocks;
// rows of 257 chunks (no part count divides them), Q6_K and two rows take linear and
// residual_rms_norm. Twice in a row, with and without the next norm.
TEST_F(CudaOps, ProductThenResidualNorm) {
  const auto backends = by_stream_warps();
  struct Case {
    DType dtype;
    int64_t n, d, k;
  };
  for (const Case c : {Case{DType::Q4_0, 1, 5376, 21504}, Case{DType::Q8_0, 1, 2560, 10240},
                       Case{DType::Q4_0, 1, 3840, 15360}, Case{DType::Q4_0, 1, 8200, 10240},
                       Case{DType::Q4_0, 1, 1000, 8224}, Case{DType::Q6_K, 1, 1152, 10240},
                       Case{DType::Q8_0, 2, 640, 10240}, Case{DType::Q4_0, 1, 640, 4096},
                       Case{DType::Q4_K, 1, 5376, 21504}, Case{DType::NF4, 1, 1000, 10240}}) {
    const Tensor w = weight(c.dtype, c.d, c.k, 71);
    const Tensor a = random_tensor(DType::F32, {c.n, c.k}, 72);
    const Tensor x0 = random_tensor(DType::F32, {c.n, c.d}, 73, 3.0f);
    const Tensor w_post = random_tensor(DType::BF16, {c.d}, 74, 0.5f), w_next = random_tensor(DType::BF16, {c.d}, 75, 0.5f);
    for (const bool with_next : {true, false}) {
      Tensor x_ref = x0.clone(), y_ref = ref.alloc(DType::F32, {c.n, c.d}), next_ref = ref.alloc(DType::F32, {c.n, c.d});
      for (int rep = 0; rep < 2; ++rep) {
        ref.linear(int8_rounded(a), as_streamed(w), nullptr, y_ref);
        ref.residual_rms_norm(x_ref, y_ref, w_post, 1e-6f, with_next ? &w_next : nullptr,
                              with_next ? &next_ref : nullptr);
      }
      for (const auto& [what, b] : backends) {
        SCOPED_TRACE(what + " " + std::string(dtype_name(c.dtype)) + " n=" + std::to_string(c.n) +
                     " d=" + std::to_string(c.d) + " k=" + std::to_string(c.k) + (with_next ? " with next" : ""));
        const Tensor dw = b->prepare_weight(w), dpost = b->prepare_weight(w_post), dnext = b->prepare_weight(w_next);
        Tensor x = b->from_host(x0), next = b->alloc(DType::F32, {c.n, c.d});
        const Tensor da = b->from_host(a);
        for (int rep = 0; rep < 2; ++rep)
          b->linear_residual_rms_norm(da, dw, x, dpost, 1e-6f, with_next ? &dnext : nullptr,
                                      with_next ? &next : nullptr);
        expect_close(b->to_host(x), x_ref);
        if (with_next) expect_close(b->to_host(next), next_ref);
      }
    }
  }
  // Shapes that do not fit are errors, before anything runs.
  const Tensor dw = gpu->prepare_weight(weight(DType::Q4_0, 640, 10240, 76));
  const Tensor dpost = gpu->prepare_weight(random_tensor(DType::BF16, {640}, 77));
  Tensor a = gpu->alloc(DType::F32, {1, 10240}), x = gpu->alloc(DType::F32, {1, 640}),
         wrong_x = gpu->alloc(DType::F32, {1, 600});
  EXPECT_THROW(gpu->linear_residual_rms_norm(gpu->alloc(DType::F32, {1, 1024}), dw, x, dpost, 1e-6f, nullptr, nullptr),
               Error);
  EXPECT_THROW(gpu->linear_residual_rms_norm(a, dw, wrong_x, dpost, 1e-6f, nullptr, nullptr), Error);
}

// Products into result_buffer (page-locked host memory, a decode step's logits): one row over
// Q6_K (the LM head's format) written over the bus by its warps 8 rows at a time as they finish
// them (the rows no warp wrote whole at the end), with 16- and 8-warp blocks, rows of 1 and 21
// half super-blocks; other formats and several rows made in device memory and copied in. Each
// bit-equal to the same product into device memory, and close to the reference.
TEST_F(CudaOps, ProductsIntoHostResults) {
  const auto backends = by_stream_warps();
  struct Case {
    DType dtype;
    int64_t n, m, k;
  };
  for (const Case c : {Case{DType::Q6_K, 1, 60001, 256}, Case{DType::Q6_K, 1, 20000, 5376}, Case{DType::Q4_0, 1, 5000, 1152},
                       Case{DType::Q6_K, 3, 4000, 512}}) {
    const Tensor w = weight(c.dtype, c.m, c.k, 81);
    const Tensor x = random_tensor(DType::F32, {c.n, c.k}, 82);
    Tensor want = ref.alloc(DType::F32, {c.n, c.m});
    ref.linear(int8_rounded(x), w, nullptr, want);
    for (const auto& [what, b] : backends) {
      SCOPED_TRACE(what + " " + std::string(dtype_name(c.dtype)) + " n=" + std::to_string(c.n) +
                   " m=" + std::to_string(c.m) + " k=" + std::to_string(c.k));
      const Tensor dw = b->prepare_weight(w), dx = b->from_host(x);
      Tensor in_device = b->alloc(DType::F32, {c.n, c.m});
      b->linear(dx, dw, nullptr, in_device);
      const Tensor device_values = b->to_host(in_device);
      for (int rep = 0; rep < 2; ++rep) {  // (the second: a block the pool gave back)
        Tensor host = b->result_buffer(DType::F32, {c.n, c.m});
        b->linear(dx, dw, nullptr, host);
        const Tensor got = b->to_host(host);
        EXPECT_EQ(got.raw(), host.raw());  // read where it was written
        EXPECT_EQ(0, std::memcmp(got.raw(), device_values.raw(), size_t(got.nbytes())));
        expect_close(got, want);
      }
    }
  }
}

}  // namespace
}  // namespace unicorn
