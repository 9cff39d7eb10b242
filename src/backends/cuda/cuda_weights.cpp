#ifdef UNICORN_HAVE_CUDA
// Weights into the GPU layouts of cuda_kernels.h (cuda_weights.h).
#include "backends/cuda/cuda_weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/quant/nf4.h"

namespace unicorn::cuda {

WFmt plain_format(DType t) {
  switch (t) {
    case DType::F32: return WFmt::F32;
    case DType::F16: return WFmt::F16;
    case DType::BF16: return WFmt::BF16;
    default: fail("cuda: internal: {} is not a plain float type", dtype_name(t));
  }
}

Tensor prepare_weight(const Tensor& host, const UploadWeight& upload_weight) {
  const DType t = host.dtype();
  // Vectors (norms, biases) become f32, as the kernels read them, with a bf16 copy after them.
  if (!dtype_info(t).is_float) fail("cuda: cannot use a {} tensor {} as a weight", dtype_name(t), shape_str(host.shape()));
  if (host.rank() <= 1) {
    const std::vector<float> v = host.to_f32();
    const Tensor b16 = host.converted(DType::BF16);
    std::vector<const uint8_t*> at;
    Tensor dev = upload_weight(DType::F32, host.shape(), {{v.data(), int64_t(v.size()) * 4}, {b16.raw(), b16.nbytes()}},
                               &at);
    auto copy = std::make_shared<VectorBf16>();
    copy->f32 = reinterpret_cast<const float*>(at[0]);
    copy->bf16 = at[1];
    return dev.with_aux(copy);
  }
  const int64_t cols = host.dim(-1), rows = host.numel() / cols;
  auto with_view = [&](Tensor dev, WFmt fmt, const std::vector<const uint8_t*>& starts, const float* levels,
                       const std::function<void(WeightView&)>& adjust = nullptr) {
    auto cw = std::make_shared<CudaWeight>();
    cw->fmt = fmt;
    cw->view.p0 = starts[0];
    cw->view.p1 = starts.size() > 1 ? starts[1] : nullptr;
    cw->view.p2 = starts.size() > 2 ? starts[2] : nullptr;
    cw->view.p3 = starts.size() > 3 ? starts[3] : nullptr;
    cw->view.levels = levels;
    cw->view.rows = rows;
    cw->view.cols = cols;
    if (adjust) adjust(cw->view);
    return dev.with_aux(cw);
  };
  std::vector<const uint8_t*> starts;
  switch (t) {
    case DType::F32:
    case DType::F16:
    case DType::BF16: {
      Tensor d = upload_weight(t, host.shape(), {{host.raw(), host.nbytes()}}, &starts);
      return with_view(d, plain_format(t), starts, nullptr);
    }
    case DType::Q4_0:
    case DType::Q8_0: {
      // ggml blocks -> codes then scales.
      const bool q4 = t == DType::Q4_0;
      const int64_t blocks = rows * cols / 32, code_bytes = q4 ? 16 : 32;
      std::vector<uint8_t> codes(static_cast<size_t>(blocks * code_bytes));
      std::vector<uint16_t> scales(static_cast<size_t>(blocks));
      const uint8_t* src = static_cast<const uint8_t*>(host.raw());
      const int64_t block_bytes = 2 + code_bytes;
      for (int64_t b = 0; b < blocks; ++b) {
        std::memcpy(&scales[size_t(b)], src + b * block_bytes, 2);
        std::memcpy(&codes[size_t(b * code_bytes)], src + b * block_bytes + 2, size_t(code_bytes));
      }
      Tensor d = upload_weight(t, host.shape(), {{codes.data(), int64_t(codes.size())}, {scales.data(), blocks * 2}},
                               &starts);
      return with_view(d, q4 ? WFmt::Q4_0 : WFmt::Q8_0, starts, nullptr);
    }
    case DType::Q4_K: {
      Tensor d = upload_weight(t, host.shape(), {{host.raw(), host.nbytes()}}, &starts);
      return with_view(d, WFmt::Q4_K, starts, nullptr);
    }
    case DType::Q6_K: {
      // 210-byte blocks -> ql, qh (16-byte pieces interleaved by q6k_piece), scales, d arrays.
      const int64_t blocks = rows * cols / 256;
      const auto B = static_cast<size_t>(blocks);
      std::vector<uint8_t> ql(size_t(q6k_plane_pieces(blocks * 2, 4)) * 16), qh(size_t(q6k_plane_pieces(blocks * 2, 2)) * 16),
          sc(B * 16), dd(B * 2);
      const uint8_t* src = static_cast<const uint8_t*>(host.raw());
      for (size_t b = 0; b < B; ++b) {
        const uint8_t* blk = src + b * 210;
        for (int h = 0; h < 2; ++h) {
          const int64_t half = int64_t(b) * 2 + h;
          for (int p = 0; p < 4; ++p) std::memcpy(&ql[size_t(q6k_piece(half, p, 4)) * 16], blk + h * 64 + p * 16, 16);
          for (int p = 0; p < 2; ++p)
            std::memcpy(&qh[size_t(q6k_piece(half, p, 2)) * 16], blk + 128 + h * 32 + p * 16, 16);
        }
        std::memcpy(&sc[b * 16], blk + 192, 16);
        std::memcpy(&dd[b * 2], blk + 208, 2);
      }
      Tensor d = upload_weight(t, host.shape(),
                               {{ql.data(), int64_t(ql.size())}, {qh.data(), int64_t(qh.size())},
                                {sc.data(), blocks * 16}, {dd.data(), blocks * 2}},
                               &starts);
      return with_view(d, WFmt::Q6_K, starts, nullptr);
    }
    case DType::NF4: {
      const auto* st = dynamic_cast<const nf4::State*>(host.aux().get());
      if (!st) fail("cuda: NF4 weight {} without its quantization state", shape_str(host.shape()));
      if (st->blocksize % 64 == 0 && cols % 64 == 0) {
        // Kept as stored (4.13 bits a value with double quantization): the kernels undo the
        // nested quantization of the absmax as they read it.
        if (st->quant_map.size() != 16)
          fail("cuda: NF4 weight {} has {} levels, expected 16", shape_str(host.shape()), st->quant_map.size());
        std::vector<float> tables(16 + 256 + 1, 0.0f);
        std::copy(st->quant_map.begin(), st->quant_map.end(), tables.begin());
        const int64_t blocks = st->blocks();
        if (blocks * st->blocksize != rows * cols)
          fail("cuda: NF4 weight {} has {} absmax blocks of {}, expected {} values", shape_str(host.shape()), blocks,
               st->blocksize, rows * cols);
        std::vector<std::pair<const void*, int64_t>> parts = {{host.raw(), rows * cols / 2}};
        if (st->nested) {
          if (st->nested_code.size() != 256 || st->nested_blocksize <= 0 ||
              int64_t(st->nested_absmax.size()) * st->nested_blocksize < blocks)
            fail("cuda: NF4 weight {} has an inconsistent nested quantization state", shape_str(host.shape()));
          std::copy(st->nested_code.begin(), st->nested_code.end(), tables.begin() + 16);
          tables[16 + 256] = st->offset;
          parts.push_back({st->qabsmax.data(), blocks});
          parts.push_back({st->nested_absmax.data(), int64_t(st->nested_absmax.size()) * 4});
        } else {
          parts.push_back({st->absmax.data(), blocks * 4});
        }
        parts.push_back({tables.data(), int64_t(tables.size()) * 4});
        Tensor d = upload_weight(t, host.shape(), parts, &starts);
        return with_view(d, WFmt::NF4, starts, reinterpret_cast<const float*>(starts.back()), [&](WeightView& v) {
          v.p2 = st->nested ? starts[2] : nullptr;
          v.p3 = nullptr;
          v.nf4_block = st->blocksize;
          v.nf4_nested = st->nested ? st->nested_blocksize : 1;
        });
      }
      break;  // other block sizes: f16 below
    }
    default: break;
  }
  // Formats without a kernel here (Q5_K, Q3_K, Q2_K, Q4_1, Q5_0, Q5_1, IQ4_NL, NF4 with small
  // blocks: llama-quantize's fallbacks for a few tensors): dequantized once to f16.
  const std::vector<float> v = host.to_f32();
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  Tensor d = upload_weight(DType::F16, host.shape(), {{h.data(), int64_t(h.size()) * 2}}, &starts);
  return with_view(d, WFmt::F16, starts, nullptr);
}

std::pair<WFmt, WeightView> weight_of(const Tensor& w) {
  if (const auto* cw = dynamic_cast<const CudaWeight*>(w.aux().get())) return {cw->fmt, cw->view};
  WeightView v;
  v.p0 = static_cast<const uint8_t*>(w.raw());
  v.cols = w.dim(-1);
  v.rows = w.numel() / v.cols;
  return {plain_format(w.dtype()), v};
}

const void* bf16_vector(const Tensor& t) {
  const auto* copy = dynamic_cast<const VectorBf16*>(t.aux().get());
  if (!copy || t.dtype() != DType::F32) return nullptr;
  return static_cast<const uint16_t*>(copy->bf16) + (t.data<const float>() - copy->f32);
}

const float* f32_vector(const Tensor& t, const char* what) {
  if (t.dtype() != DType::F32) fail("cuda: {} must be f32 on the GPU (got {}): prepare it first", what, dtype_name(t.dtype()));
  return t.data<const float>();
}

Tensor upload_weight(WeightArena& arena, DType dtype, const Shape& shape, const UploadParts& parts,
                     std::vector<const uint8_t*>* starts) {
  int64_t total = 0;
  for (const auto& [_, n] : parts) total += (n + 255) / 256 * 256;
  total = std::max<int64_t>(total, 256);
  auto [base, owner] = arena.alloc(total, fmt::format("a {} weight {}", dtype_name(dtype), shape_str(shape)));
  int64_t at = 0;
  for (const auto& [src, n] : parts) {
    uint8_t* dst = base + at;
    if (starts) starts->push_back(dst);
    UNICORN_CUDA_CHECK(cudaMemcpy(dst, src, size_t(n), cudaMemcpyHostToDevice));
    at += (n + 255) / 256 * 256;
  }
  return Tensor::view(dtype, shape, base, std::move(owner));
}

}  // namespace unicorn::cuda

#endif  // UNICORN_HAVE_CUDA
