// Highway compiles this file once per target instruction set (foreach_target.h re-includes
// it); HWY_EXPORT / HWY_DYNAMIC_DISPATCH pick the best at run time.
#include <algorithm>
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/simd_kernels.cpp"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
// Must come after foreach_target.h.
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "backends/cpu/simd_kernels.h"
#include "core/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace unicorn::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;

// Loads Lanes(DF) weights starting at p as f32.
struct LoadBF16 {
  using T = uint16_t;
  static HWY_INLINE hn::Vec<DF> load(DF d, const uint16_t* p) {
    const hn::Rebind<uint16_t, DF> du16;
    const hn::Rebind<uint32_t, DF> du32;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(du32, hn::LoadU(du16, p))));
  }
  static float scalar(const uint16_t* p) {
    uint32_t bits = uint32_t(*p) << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
  }
};
struct LoadF16 {
  using T = uint16_t;
  static HWY_INLINE hn::Vec<DF> load(DF d, const uint16_t* p) {
    const hn::Rebind<hwy::float16_t, DF> df16;
    return hn::PromoteTo(d, hn::LoadU(df16, reinterpret_cast<const hwy::float16_t*>(p)));
  }
  static float scalar(const uint16_t* p) { return f16_to_f32(*p); }
};
struct LoadF32 {
  using T = float;
  static HWY_INLINE hn::Vec<DF> load(DF d, const float* p) { return hn::LoadU(d, p); }
  static float scalar(const float* p) { return *p; }
};

// NX x NW dot products with all accumulators in registers.
template <class Loader, size_t NX, size_t NW>
HWY_INLINE void DotTileFixed(const float* x, size_t ldx, const typename Loader::T* w, size_t ldw, size_t k, float* y,
                             size_t ldy) {
  const DF d;
  const size_t L = hn::Lanes(d);
  hn::Vec<DF> acc[NX][NW];
  for (size_t i = 0; i < NX; ++i)
    for (size_t j = 0; j < NW; ++j) acc[i][j] = hn::Zero(d);
  size_t t = 0;
  for (; t + L <= k; t += L) {
    hn::Vec<DF> wv[NW];
    for (size_t j = 0; j < NW; ++j) wv[j] = Loader::load(d, w + j * ldw + t);
    for (size_t i = 0; i < NX; ++i) {
      const auto xv = hn::LoadU(d, x + i * ldx + t);
      for (size_t j = 0; j < NW; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
    }
  }
  for (size_t i = 0; i < NX; ++i)
    for (size_t j = 0; j < NW; ++j) {
      float s = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
      for (size_t u = t; u < k; ++u) s += x[i * ldx + u] * Loader::scalar(w + j * ldw + u);
      y[i * ldy + j] = s;
    }
}

template <class Loader, size_t NX>
HWY_INLINE void DotTileNW(const float* x, size_t ldx, const typename Loader::T* w, size_t ldw, size_t nw, size_t k,
                          float* y, size_t ldy) {
  switch (nw) {
    case 1: return DotTileFixed<Loader, NX, 1>(x, ldx, w, ldw, k, y, ldy);
    case 2: return DotTileFixed<Loader, NX, 2>(x, ldx, w, ldw, k, y, ldy);
    case 3: return DotTileFixed<Loader, NX, 3>(x, ldx, w, ldw, k, y, ldy);
    default: return DotTileFixed<Loader, NX, 4>(x, ldx, w, ldw, k, y, ldy);
  }
}

template <class Loader>
HWY_INLINE void DotTile(const float* x, size_t ldx, size_t nx, const typename Loader::T* w, size_t ldw, size_t nw,
                        size_t k, float* y, size_t ldy) {
  switch (nx) {
    case 1: return DotTileNW<Loader, 1>(x, ldx, w, ldw, nw, k, y, ldy);
    case 2: return DotTileNW<Loader, 2>(x, ldx, w, ldw, nw, k, y, ldy);
    case 3: return DotTileNW<Loader, 3>(x, ldx, w, ldw, nw, k, y, ldy);
    default: return DotTileNW<Loader, 4>(x, ldx, w, ldw, nw, k, y, ldy);
  }
}

void DotTileBF16(const float* x, size_t ldx, size_t nx, const uint16_t* w, size_t ldw, size_t nw, size_t k, float* y,
                 size_t ldy) {
  DotTile<LoadBF16>(x, ldx, nx, w, ldw, nw, k, y, ldy);
}
void DotTileF16(const float* x, size_t ldx, size_t nx, const uint16_t* w, size_t ldw, size_t nw, size_t k, float* y,
                size_t ldy) {
  DotTile<LoadF16>(x, ldx, nx, w, ldw, nw, k, y, ldy);
}
void DotTileF32(const float* x, size_t ldx, size_t nx, const float* w, size_t ldw, size_t nw, size_t k, float* y,
                size_t ldy) {
  DotTile<LoadF32>(x, ldx, nx, w, ldw, nw, k, y, ldy);
}

float DotF32(const float* a, const float* b, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
  size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
    acc1 = hn::MulAdd(hn::LoadU(d, a + i + L), hn::LoadU(d, b + i + L), acc1);
  }
  for (; i + L <= n; i += L) acc0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), acc0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void AxpyF32(float a, const float* x, float* y, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto av = hn::Set(d, a);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::MulAdd(av, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void ScaleF32(const float* x, float scale, float* y, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto sv = hn::Set(d, scale);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::LoadU(d, x + i), sv), d, y + i);
  for (; i < n; ++i) y[i] = x[i] * scale;
}

template <class Loader>
HWY_INLINE void ConvertRow(const uint16_t* x, float* y, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(Loader::load(d, x + i), d, y + i);
  for (; i < n; ++i) y[i] = Loader::scalar(x + i);
}
void BF16ToF32Row(const uint16_t* x, float* y, size_t n) { ConvertRow<LoadBF16>(x, y, n); }
void F16ToF32Row(const uint16_t* x, float* y, size_t n) { ConvertRow<LoadF16>(x, y, n); }

float SumSquaresF32(const float* x, size_t n) { return DotF32(x, x, n); }

void ScaleMulF32(const float* x, float inv, const float* w1, float* y, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto iv = hn::Set(d, inv);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::Mul(hn::LoadU(d, x + i), iv), hn::LoadU(d, w1 + i)), d, y + i);
  for (; i < n; ++i) y[i] = x[i] * inv * w1[i];
}

void GeluTanhMulF32(const float* g, const float* u, float* out, size_t n) {
  // ref: torch gelu(approximate="tanh")
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f), k0 = hn::Set(d, 0.7978845608028654f),
             k1 = hn::Set(d, 0.044715f);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto x = hn::LoadU(d, g + i);
    const auto inner = hn::Mul(k0, hn::MulAdd(hn::Mul(k1, hn::Mul(x, x)), x, x));
    auto r = hn::Mul(hn::Mul(half, x), hn::Add(one, hn::Tanh(d, inner)));
    if (u) r = hn::Mul(r, hn::LoadU(d, u + i));
    hn::StoreU(r, d, out + i);
  }
  for (; i < n; ++i) {
    const float x = g[i];
    const float r = 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    out[i] = u ? r * u[i] : r;
  }
}

void AddF32(const float* a, const float* b, float* out, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  size_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Add(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, out + i);
  for (; i < n; ++i) out[i] = a[i] + b[i];
}

float ExpSubSumF32(float* x, float m, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto mv = hn::Set(d, m);
  auto acc = hn::Zero(d);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, x + i), mv));
    hn::StoreU(e, d, x + i);
    acc = hn::Add(acc, e);
  }
  float s = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - m);
    s += x[i];
  }
  return s;
}

// The largest value, NaN left out (-inf if none); with finite_only, infinities left out too.
float MaxF32(const float* x, size_t n, bool finite_only) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto ninf = hn::Set(d, -HUGE_VALF);
  auto acc = ninf;
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    const auto keep = finite_only ? hn::IsFinite(v) : hn::Not(hn::IsNaN(v));
    acc = hn::Max(acc, hn::IfThenElse(keep, v, ninf));
  }
  float m = hn::GetLane(hn::MaxOfLanes(d, acc));
  for (; i < n; ++i)
    if ((finite_only ? std::isfinite(x[i]) : !std::isnan(x[i])) && x[i] > m) m = x[i];
  return m;
}

// out = exp(x * scale - m) for finite x (the exponent held above -104, where exp is 0 in f32),
// 0 for infinities and NaN; returns their sum (in f32 over 64 vectors at a time, those in f64).
double ExpScaledF32(const float* x, float scale, float m, float* out, size_t n) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto sv = hn::Set(d, scale), mv = hn::Set(d, m), lo = hn::Set(d, -104.0f);
  double sum = 0;
  size_t i = 0;
  while (i + L <= n) {
    auto acc = hn::Zero(d);
    for (size_t end = std::min(n - n % L, i + 64 * L); i < end; i += L) {
      const auto v = hn::LoadU(d, x + i);
      const auto e = hn::IfThenElseZero(hn::IsFinite(v), hn::Exp(d, hn::Max(hn::Sub(hn::Mul(v, sv), mv), lo)));
      hn::StoreU(e, d, out + i);
      acc = hn::Add(acc, e);
    }
    sum += double(hn::GetLane(hn::SumOfLanes(d, acc)));
  }
  for (; i < n; ++i) {
    out[i] = std::isfinite(x[i]) ? std::exp(std::max(x[i] * scale - m, -104.0f)) : 0.0f;
    sum += double(out[i]);
  }
  return sum;
}

// The first i with x[i] == v, or n.
size_t FindF32(const float* x, size_t n, float v) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto vv = hn::Set(d, v);
  size_t i = 0;
  for (; i + L <= n; i += L) {
    const intptr_t j = hn::FindFirstTrue(d, hn::Eq(hn::LoadU(d, x + i), vv));
    if (j >= 0) return i + size_t(j);
  }
  for (; i < n; ++i)
    if (x[i] == v) return i;
  return n;
}

// The indices i < n (in order) of finite x[i] with x[i] * scale >= threshold; returns how many.
size_t CollectAtLeast(const float* x, size_t n, float scale, float threshold, int32_t* idx) {
  const DF d;
  const size_t L = hn::Lanes(d);
  const auto sv = hn::Set(d, scale), tv = hn::Set(d, threshold);
  size_t count = 0, i = 0;
  for (; i + L <= n; i += L) {
    const auto v = hn::LoadU(d, x + i);
    const auto keep = hn::And(hn::IsFinite(v), hn::Ge(hn::Mul(v, sv), tv));
    if (hn::AllFalse(d, keep)) continue;
    // (Lane by lane: a compressing store is microcode on some CPUs, 10x slower on AMD's Zen 4.)
    for (size_t j = i; j < i + L; ++j)
      if (std::isfinite(x[j]) && x[j] * scale >= threshold) idx[count++] = int32_t(j);
  }
  for (; i < n; ++i)
    if (std::isfinite(x[i]) && x[i] * scale >= threshold) idx[count++] = int32_t(i);
  return count;
}

}  // namespace HWY_NAMESPACE
}  // namespace unicorn::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace unicorn::cpu {

HWY_EXPORT(DotTileBF16);
HWY_EXPORT(DotTileF16);
HWY_EXPORT(DotTileF32);
HWY_EXPORT(DotF32);
HWY_EXPORT(AxpyF32);
HWY_EXPORT(ScaleF32);
HWY_EXPORT(BF16ToF32Row);
HWY_EXPORT(F16ToF32Row);
HWY_EXPORT(SumSquaresF32);
HWY_EXPORT(ScaleMulF32);
HWY_EXPORT(GeluTanhMulF32);
HWY_EXPORT(AddF32);
HWY_EXPORT(ExpSubSumF32);
HWY_EXPORT(MaxF32);
HWY_EXPORT(ExpScaledF32);
HWY_EXPORT(CollectAtLeast);
HWY_EXPORT(FindF32);

void dot_tile_bf16(const float* x, size_t ldx, size_t nx, const uint16_t* w, size_t ldw, size_t nw, size_t k,
                   float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileBF16)(x, ldx, nx, w, ldw, nw, k, y, ldy);
}
void dot_tile_f16(const float* x, size_t ldx, size_t nx, const uint16_t* w, size_t ldw, size_t nw, size_t k,
                  float* y, size_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileF16)(x, ldx, nx, w, ldw, nw, k, y, ldy);
}
void dot_tile_f32(const float* x, size_t ldx, size_t nx, const float* w, size_t ldw, size_t nw, size_t k, float* y,
                  size_t ldy) {
  HWY_DYNAMIC_DISPATCH(DotTileF32)(x, ldx, nx, w, ldw, nw, k, y, ldy);
}
float dot_f32(const float* a, const float* b, size_t n) { return HWY_DYNAMIC_DISPATCH(DotF32)(a, b, n); }
void axpy_f32(float a, const float* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(AxpyF32)(a, x, y, n); }
void scale_f32(const float* x, float scale, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(ScaleF32)(x, scale, y, n); }
void bf16_to_f32_row(const uint16_t* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(BF16ToF32Row)(x, y, n); }
void f16_to_f32_row(const uint16_t* x, float* y, size_t n) { HWY_DYNAMIC_DISPATCH(F16ToF32Row)(x, y, n); }
float sum_squares_f32(const float* x, size_t n) { return HWY_DYNAMIC_DISPATCH(SumSquaresF32)(x, n); }
void scale_mul_f32(const float* x, float inv, const float* w1, float* y, size_t n) {
  HWY_DYNAMIC_DISPATCH(ScaleMulF32)(x, inv, w1, y, n);
}
void gelu_tanh_mul_f32(const float* g, const float* u, float* out, size_t n) {
  HWY_DYNAMIC_DISPATCH(GeluTanhMulF32)(g, u, out, n);
}
void add_f32(const float* a, const float* b, float* out, size_t n) { HWY_DYNAMIC_DISPATCH(AddF32)(a, b, out, n); }
float exp_sub_sum_f32(float* x, float m, size_t n) { return HWY_DYNAMIC_DISPATCH(ExpSubSumF32)(x, m, n); }
float max_f32(const float* x, size_t n, bool finite_only) { return HWY_DYNAMIC_DISPATCH(MaxF32)(x, n, finite_only); }
double exp_scaled_f32(const float* x, float scale, float m, float* out, size_t n) {
  return HWY_DYNAMIC_DISPATCH(ExpScaledF32)(x, scale, m, out, n);
}
size_t find_f32(const float* x, size_t n, float v) { return HWY_DYNAMIC_DISPATCH(FindF32)(x, n, v); }
size_t collect_at_least(const float* x, size_t n, float scale, float threshold, int32_t* idx) {
  return HWY_DYNAMIC_DISPATCH(CollectAtLeast)(x, n, scale, threshold, idx);
}

}  // namespace unicorn::cpu
#endif  // HWY_ONCE
