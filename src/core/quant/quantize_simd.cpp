// Vectorized Q4_0 and Q8_0 quantizers (Highway, dispatched at run time), used when loading a
// model with --quant: the same bytes as the reference code in legacy_quants.cpp (tested
// against it), 10x faster. Every float operation is the reference's, elementwise: IEEE
// mul / add / trunc are the same in a vector lane, and nothing is fused.
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "core/quant/quantize_simd.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/highway.h"
#include "core/dtype.h"
#include "core/quant/ggml_blocks.h"
#include "core/quant/quantize_simd.h"

HWY_BEFORE_NAMESPACE();
namespace unicorn::quant {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;
using DI8 = hn::Rebind<int8_t, DF>;

// max |x| over one 32-value block.
HWY_INLINE float block_amax(DF d, const float* x) {
  auto m = hn::Zero(d);
  for (size_t i = 0; i < 32; i += hn::Lanes(d)) m = hn::Max(m, hn::Abs(hn::LoadU(d, x + i)));
  return hn::GetLane(hn::MaxOfLanes(d, m));
}

void QuantizeQ4_0(const float* x, void* out, int64_t n) {
  const DF d;
  const DI di;
  const DU8 du8;
  const size_t L = hn::Lanes(d);
  auto* y = static_cast<BlockQ4_0*>(out);
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    // ref: the first value of largest magnitude, sign kept (+0 for an all-zero block).
    const float amax = block_amax(d, x);
    float max = 0.0f;
    if (amax > 0.0f) {
      for (size_t i = 0; i < 32; i += L) {
        const intptr_t at = hn::FindFirstTrue(d, hn::Eq(hn::Abs(hn::LoadU(d, x + i)), hn::Set(d, amax)));
        if (at >= 0) {
          max = x[i + size_t(at)];
          break;
        }
      }
    }
    const float dv = max / -8;
    const float id = dv != 0.0f ? 1.0f / dv : 0.0f;
    y[b].d = f32_to_f16(dv);
    const auto vid = hn::Set(d, id), half = hn::Set(d, 8.5f);
    const auto fifteen = hn::Set(di, 15);
    for (size_t j = 0; j < 16; j += L) {
      // (int8_t)(x * id + 8.5f): truncation toward zero, then min 15.
      const auto q0 = hn::Min(hn::ConvertTo(di, hn::Add(hn::Mul(hn::LoadU(d, x + j), vid), half)), fifteen);
      const auto q1 = hn::Min(hn::ConvertTo(di, hn::Add(hn::Mul(hn::LoadU(d, x + 16 + j), vid), half)), fifteen);
      const auto bytes = hn::Or(q0, hn::ShiftLeft<4>(q1));
      hn::StoreU(hn::DemoteTo(du8, bytes), du8, y[b].qs + j);
    }
  }
}

void QuantizeQ8_0(const float* x, void* out, int64_t n) {
  const DF d;
  const DI di;
  const DI8 di8;
  const size_t L = hn::Lanes(d);
  auto* y = static_cast<BlockQ8_0*>(out);
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    const float amax = block_amax(d, x);
    const float dv = amax / 127;
    const float id = dv != 0.0f ? 1.0f / dv : 0.0f;
    y[b].d = f32_to_f16(dv);
    const auto vid = hn::Set(d, id), one = hn::Set(d, 1.0f), half = hn::Set(d, 0.5f);
    for (size_t j = 0; j < 32; j += L) {
      // roundf: halves away from zero. v - trunc(v) is exact, so the test is too.
      const auto v = hn::Mul(hn::LoadU(d, x + j), vid);
      const auto t = hn::Trunc(v);
      const auto r = hn::IfThenElse(hn::Ge(hn::Abs(hn::Sub(v, t)), half), hn::Add(t, hn::CopySign(one, v)), t);
      hn::StoreU(hn::DemoteTo(di8, hn::ConvertTo(di, r)), di8, y[b].qs + j);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace unicorn::quant
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace unicorn::quant {

HWY_EXPORT(QuantizeQ4_0);
HWY_EXPORT(QuantizeQ8_0);

void quantize_q4_0_fast(const float* x, void* y, int64_t n) { HWY_DYNAMIC_DISPATCH(QuantizeQ4_0)(x, y, n); }
void quantize_q8_0_fast(const float* x, void* y, int64_t n) { HWY_DYNAMIC_DISPATCH(QuantizeQ8_0)(x, y, n); }

}  // namespace unicorn::quant
#endif  // HWY_ONCE
