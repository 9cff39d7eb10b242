// How the CUDA backend lays out a weight format where that is not the host's layout, in plain
// C++ (the uploader, the kernels and the tests share it; no CUDA headers).
#pragma once

#include <cstdint>

namespace unicorn::cuda {

// Q6_K's ql and qh planes: 16-byte pieces interleaved over groups of kQ6kGroup half blocks (a
// half block: 128 values, 64 bytes of ql = 4 pieces, 32 bytes of qh = 2 pieces). Piece `piece`
// of half block `half` lies at this index (in 16-byte units) of its plane of `pieces` pieces a
// half, so a group's piece p is one run of 512 bytes, and a half block's pieces are kQ6kGroup
// apart. A plane holds whole groups (q6k_plane_pieces: padded).
constexpr int kQ6kGroup = 32;
constexpr int64_t q6k_piece(int64_t half, int piece, int pieces) {
  const auto h = uint64_t(half);  // (unsigned: a shift and a mask, on the GPU's hot path)
  return int64_t(h / kQ6kGroup) * (kQ6kGroup * pieces) + piece * kQ6kGroup + int64_t(h % kQ6kGroup);
}
// 16-byte pieces in a plane of `halves` half blocks.
constexpr int64_t q6k_plane_pieces(int64_t halves, int pieces) {
  return (halves + kQ6kGroup - 1) / kQ6kGroup * kQ6kGroup * pieces;
}

// NF4's levels as the streamed one-row products take them (cuda_matvec.cu): int8, round(127
// level) half away from zero (bitsandbytes' levels lie in [-1, 1]; others are clamped there).
constexpr int nf4_int8_level(float level) {
  const float v = (level < -1.0f ? -1.0f : level > 1.0f ? 1.0f : level) * 127.0f;
  return int(v < 0.0f ? v - 0.5f : v + 0.5f);
}

}  // namespace unicorn::cuda
