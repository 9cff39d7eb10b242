#include "core/quant/interleaved.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/quant/quant.h"

namespace unicorn {

namespace {

// A field of a ggml block: its bytes [offset, offset + length), interleaved in units of `unit`.
struct Field {
  int offset, length, unit;
};
struct Layout {
  std::vector<Field> fields;
};

const Layout& layout_of(DType plain) {
  static const Layout q4_0{{{0, 2, 2}, {2, 16, 4}}};
  static const Layout q8_0{{{0, 2, 2}, {2, 32, 4}}};
  static const Layout q4_k{{{0, 2, 2}, {2, 2, 2}, {4, 12, 4}, {16, 128, 4}}};
  static const Layout q6_k{{{208, 2, 2}, {192, 16, 1}, {0, 128, 4}, {128, 64, 4}}};
  switch (plain) {
    case DType::Q4_0: return q4_0;
    case DType::Q8_0: return q8_0;
    case DType::Q4_K: return q4_k;
    case DType::Q6_K: return q6_k;
    default: fail("no interleaved layout for {}", dtype_name(plain));
  }
}

// Moves one 16-row group's block between plain rows (row i's block at rows + i * row_bytes)
// and the interleaved bytes at x.
template <bool ToInterleaved>
void move_group_block(const Layout& l, uint8_t* rows, int64_t row_bytes, uint8_t* x) {
  int64_t at = 0;
  for (const Field& f : l.fields) {
    for (int c = 0; c < f.length / f.unit; ++c, at += kInterleaveRows * f.unit) {
      for (int64_t i = 0; i < kInterleaveRows; ++i) {
        uint8_t* plain = rows + i * row_bytes + f.offset + c * f.unit;
        uint8_t* inter = x + at + i * f.unit;
        if (ToInterleaved) {
          std::memcpy(inter, plain, size_t(f.unit));
        } else {
          std::memcpy(plain, inter, size_t(f.unit));
        }
      }
    }
  }
}

void check_matrix(const Tensor& w, DType plain, const char* what) {
  const int64_t block = dtype_info(plain).block_elems;
  if (w.rank() != 2 || w.dim(1) % block)
    fail("{}: expected a [rows, cols] matrix of {}-value blocks, got {}", what, block, shape_str(w.shape()));
}

}  // namespace

bool is_interleaved(DType t) {
  return t == DType::Q4_0_X16 || t == DType::Q8_0_X16 || t == DType::Q4_K_X16 || t == DType::Q6_K_X16;
}

DType interleaved_of(DType plain) {
  switch (plain) {
    case DType::Q4_0: return DType::Q4_0_X16;
    case DType::Q8_0: return DType::Q8_0_X16;
    case DType::Q4_K: return DType::Q4_K_X16;
    case DType::Q6_K: return DType::Q6_K_X16;
    default: fail("no interleaved layout for {}", dtype_name(plain));
  }
}

DType plain_of(DType interleaved) {
  switch (interleaved) {
    case DType::Q4_0_X16: return DType::Q4_0;
    case DType::Q8_0_X16: return DType::Q8_0;
    case DType::Q4_K_X16: return DType::Q4_K;
    case DType::Q6_K_X16: return DType::Q6_K;
    default: fail("{} is not an interleaved layout", dtype_name(interleaved));
  }
}

Tensor interleave_rows(const Tensor& w) {
  Tensor out = Tensor::zeros(interleaved_of(w.dtype()), w.shape());
  interleave_rows_into(w, out);
  return out;
}

void interleave_rows_into(const Tensor& w, Tensor& out) {
  const DType plain = w.dtype();
  const Layout& l = layout_of(plain);
  check_matrix(w, plain, "interleave_rows");
  if (out.dtype() != interleaved_of(plain) || out.shape() != w.shape())
    fail("interleave_rows: output {} {} does not match {} {}", dtype_name(out.dtype()), shape_str(out.shape()),
         dtype_name(plain), shape_str(w.shape()));
  const int64_t rows = w.dim(0), bb = dtype_info(plain).block_bytes, nb = w.dim(1) / dtype_info(plain).block_elems,
                row_bytes = nb * bb, G = rows / kInterleaveRows;
  auto* src = static_cast<uint8_t*>(w.raw());  // only read
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t g = 0; g < G; ++g)
    for (int64_t b = 0; b < nb; ++b)
      move_group_block<true>(l, src + g * kInterleaveRows * row_bytes + b * bb, row_bytes,
                             dst + (g * nb + b) * kInterleaveRows * bb);
  std::memcpy(dst + G * kInterleaveRows * row_bytes, src + G * kInterleaveRows * row_bytes,
              size_t((rows - G * kInterleaveRows) * row_bytes));
}

void deinterleave_group(DType plain, const uint8_t* w, int64_t nb, int64_t g, uint8_t* out) {
  const Layout& l = layout_of(plain);
  const int64_t bb = dtype_info(plain).block_bytes;
  for (int64_t b = 0; b < nb; ++b)
    move_group_block<false>(l, out + b * bb, nb * bb, const_cast<uint8_t*>(w) + (g * nb + b) * kInterleaveRows * bb);
}

void dequantize_interleaved_row(const Tensor& w, int64_t row, float* out) {
  const DType plain = plain_of(w.dtype());
  check_matrix(w, plain, "dequantize_interleaved_row");
  UNICORN_CHECK(row >= 0 && row < w.dim(0));
  const int64_t cols = w.dim(1), nb = cols / dtype_info(plain).block_elems, row_bytes = nb * dtype_info(plain).block_bytes;
  const auto* base = static_cast<const uint8_t*>(w.raw());
  const int64_t G = w.dim(0) / kInterleaveRows;
  if (row >= G * kInterleaveRows) {  // a plain tail row
    dequantize_values(plain, base + row * row_bytes, out, cols);
    return;
  }
  // Rebuild the group's ggml rows, then dequantize the one asked for as ggml does.
  std::vector<uint8_t> rows(static_cast<size_t>(kInterleaveRows * row_bytes));
  deinterleave_group(plain, base, nb, row / kInterleaveRows, rows.data());
  dequantize_values(plain, rows.data() + (row % kInterleaveRows) * row_bytes, out, cols);
}

}  // namespace unicorn
