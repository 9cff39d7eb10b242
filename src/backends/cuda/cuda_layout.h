// How the CUDA backend lays out a weight format where that is not the host's layout, in plain
// C++ (the uploader, the kernels and the tests share it; no CUDA headers).
#pragma once

#include <cstdint>

namespace unicorn::cuda {

// Q6_K's ql and qh planes: 16-byte pieces interleaved over groups of 32 half blocks (a half
// block: 128 values, 64 bytes of ql = 4 pieces, 32 bytes of qh = 2 pieces). Piece `piece` of
// half block `half` lies at this index (in 16-byte units) of its plane of `pieces` pieces a
// half, so 32 consecutive half blocks' piece p are one run of 512 bytes. A plane holds whole
// groups (padded).
constexpr int64_t q6k_piece(int64_t half, int piece, int pieces) {
  return (half >> 5) * (32 * pieces) + piece * 32 + (half & 31);
}

}  // namespace unicorn::cuda
