// Weights onto the GPU (cuda_weights.cpp): host tensors in the engine's layouts into the
// layouts of cuda_kernels.h (ggml blocks split into codes and scales for aligned loads, NF4
// as stored, vectors as f32). Plain C++, only in CUDA builds.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_support.h"
#include "core/tensor.h"

namespace unicorn::cuda {

// What a prepared weight is on the GPU; activations (plain f32) carry none.
struct CudaWeight final : TensorAux {
  WFmt fmt = WFmt::F32;
  WeightView view;
};

// A prepared vector's bf16 copy beside its f32 values (for cuBLASLt's bf16 epilogues: the
// vision tower's biases), so no product rounds its bias again.
struct VectorBf16 final : TensorAux {
  const float* f32 = nullptr;
  const void* bf16 = nullptr;
};
// The bf16 copy of a prepared vector (or of its rows), or null where it has none.
const void* bf16_vector(const Tensor& t);

// The GPU format of a plain float type (F32, F16, BF16).
WFmt plain_format(DType t);

// Host buffers (pointer, bytes) that make one weight on the GPU, one after another.
using UploadParts = std::vector<std::pair<const void*, int64_t>>;
// Uploads the parts into one device tensor of `dtype` and `shape`, each part 256-byte
// aligned; the device address of each part into *starts when given.
using UploadWeight =
    std::function<Tensor(DType dtype, const Shape& shape, const UploadParts& parts, std::vector<const uint8_t*>* starts)>;

// An UploadWeight into `arena` (synchronous copies).
Tensor upload_weight(WeightArena& arena, DType dtype, const Shape& shape, const UploadParts& parts,
                     std::vector<const uint8_t*>* starts);

// What the kernels take of a weight: its prepared form (CudaWeight), or a plain f32 / f16 /
// bf16 tensor's bytes as they are.
std::pair<WFmt, WeightView> weight_of(const Tensor& w);

// A vector operand (norm weight, bias) as f32 on the GPU (prepare_weight makes them so, and
// activations are); an error naming `what` otherwise.
const float* f32_vector(const Tensor& t, const char* what);

// The GPU form of a host weight (CudaWeight in its aux); formats without a kernel (Q5_K, Q3_K,
// ..., NF4 with small blocks) dequantized once to f16.
Tensor prepare_weight(const Tensor& host, const UploadWeight& upload_weight);

}  // namespace unicorn::cuda
