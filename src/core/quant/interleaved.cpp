#include "core/quant/interleaved.h"

#include <cstring>

#include "core/error.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/quant.h"

namespace unicorn {

namespace {

int64_t groups(const Tensor& w) { return w.dim(0) / kInterleaveRows; }

void check_matrix(const Tensor& w, const char* what) {
  if (w.rank() != 2 || w.dim(1) % 32) fail("{}: expected a [rows, cols] matrix of 32-value blocks, got {}", what, shape_str(w.shape()));
}

}  // namespace

bool is_interleaved(DType t) { return t == DType::Q4_0_X16 || t == DType::Q8_0_X16; }

DType interleaved_of(DType plain) {
  if (plain == DType::Q4_0) return DType::Q4_0_X16;
  if (plain == DType::Q8_0) return DType::Q8_0_X16;
  fail("no interleaved layout for {}", dtype_name(plain));
}

DType plain_of(DType interleaved) {
  if (interleaved == DType::Q4_0_X16) return DType::Q4_0;
  if (interleaved == DType::Q8_0_X16) return DType::Q8_0;
  fail("{} is not an interleaved layout", dtype_name(interleaved));
}

Tensor interleave_rows(const Tensor& w) {
  check_matrix(w, "interleave_rows");
  const DType plain = w.dtype();
  const DType x16 = interleaved_of(plain);
  const int64_t rows = w.dim(0), nb = w.dim(1) / 32, bb = dtype_info(plain).block_bytes, row_bytes = nb * bb;
  Tensor out = Tensor::zeros(x16, w.shape());
  const auto* src = static_cast<const uint8_t*>(w.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  const int64_t G = rows / kInterleaveRows;
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t b = 0; b < nb; ++b) {
      uint8_t* o = dst + (g * nb + b) * kInterleaveRows * bb;
      for (int64_t i = 0; i < kInterleaveRows; ++i) {
        const uint8_t* blk = src + (g * kInterleaveRows + i) * row_bytes + b * bb;
        std::memcpy(o + 2 * i, blk, 2);  // the f16 scale
        // Both formats move 4 quant bytes at a time (a ggml Q4_0 byte v holds values v and
        // v + 16, which is the pairing of the layout).
        uint8_t* q = o + 2 * kInterleaveRows;
        for (int64_t t = 0; t < (bb - 2) / 4; ++t) std::memcpy(q + 64 * t + 4 * i, blk + 2 + 4 * t, 4);
      }
    }
  }
  std::memcpy(dst + G * kInterleaveRows * row_bytes, src + G * kInterleaveRows * row_bytes,
              size_t((rows - G * kInterleaveRows) * row_bytes));
  return out;
}

void dequantize_interleaved_row(const Tensor& w, int64_t row, float* out) {
  check_matrix(w, "dequantize_interleaved_row");
  UNICORN_CHECK(row >= 0 && row < w.dim(0));
  const DType plain = plain_of(w.dtype());
  const int64_t nb = w.dim(1) / 32, bb = dtype_info(plain).block_bytes, row_bytes = nb * bb;
  const auto* base = static_cast<const uint8_t*>(w.raw());
  const int64_t G = groups(w);
  if (row >= G * kInterleaveRows) {  // a plain tail row
    dequantize_values(plain, base + row * row_bytes, out, w.dim(1));
    return;
  }
  const int64_t g = row / kInterleaveRows, i = row % kInterleaveRows;
  // Rebuild the row's ggml blocks, then dequantize them as ggml does.
  uint8_t blk[34];
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* o = base + (g * nb + b) * kInterleaveRows * bb;
    std::memcpy(blk, o + 2 * i, 2);
    const uint8_t* q = o + 2 * kInterleaveRows;
    for (int64_t t = 0; t < (bb - 2) / 4; ++t) std::memcpy(blk + 2 + 4 * t, q + 64 * t + 4 * i, 4);
    dequantize_values(plain, blk, out + b * 32, 32);
  }
}

}  // namespace unicorn
