#include "core/quant/nf4.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "formats/bnb.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

std::vector<float> normal_values(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST(Nf4, PackingAndLevels) {
  // One block: the values sit exactly on levels times the block's absmax 2.
  std::vector<float> v(64, 0.0f);
  v[0] = -2.0f;                        // level 0
  v[1] = 2.0f;                         // level 15
  v[2] = 2.0f * nf4::kLevels[9];       // level 9
  v[3] = 2.0f * nf4::kLevels[9] * 1.01f;  // still nearest to 9
  const auto q = nf4::quantize(v, /*nested=*/false);
  ASSERT_EQ(q.codes.size(), 32u);
  EXPECT_EQ(q.codes[0], 0x0f);  // first value in the high nibble
  EXPECT_EQ(q.codes[1], 0x99);
  EXPECT_EQ(q.codes[2], 0x77);  // zeros are level 7
  EXPECT_FLOAT_EQ(q.state.absmax[0], 2.0f);
  std::vector<float> back(64);
  nf4::dequantize(q.codes.data(), q.state, 0, 64, back.data());
  EXPECT_FLOAT_EQ(back[0], -2.0f);
  EXPECT_FLOAT_EQ(back[1], 2.0f);
  EXPECT_FLOAT_EQ(back[2], 2.0f * nf4::kLevels[9]);
}

TEST(Nf4, DynamicMapMatchesBitsandbytes) {
  const auto m = nf4::dynamic_map_signed();
  ASSERT_EQ(m.size(), 256u);
  EXPECT_NEAR(m.front(), -0.99296875f, 1e-6f);
  EXPECT_FLOAT_EQ(m.back(), 1.0f);
  EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  EXPECT_EQ(std::count(m.begin(), m.end(), 0.0f), 1);
  // The smallest magnitudes are 10^-6 * mean(0.1, 1) = 5.5e-7, the largest below 1 is 0.99296875.
  float smallest = 1.0f;
  for (float x : m)
    if (x > 0) smallest = std::min(smallest, x);
  EXPECT_NEAR(smallest, 5.5e-7f, 1e-12f);
  EXPECT_NEAR(m[254], 0.99296875f, 1e-6f);
}

TEST(Nf4, DoubleQuantizationRoundTrip) {
  // 300 blocks of 64: two nested blocks; the absmax error of double quantization is small.
  const std::vector<float> v = normal_values(64 * 300, 3, 0.02f);
  const auto plain = nf4::quantize(v, false);
  const auto nested = nf4::quantize(v, true);
  ASSERT_EQ(nested.state.qabsmax.size(), 300u);
  ASSERT_EQ(nested.state.nested_absmax.size(), 2u);
  EXPECT_EQ(plain.codes, nested.codes);  // codes come from the exact absmax either way
  for (int64_t b = 0; b < 300; ++b)
    EXPECT_NEAR(nested.state.block_absmax(b), plain.state.absmax[size_t(b)], 0.01 * plain.state.absmax[size_t(b)]);
  std::vector<float> back(v.size());
  nf4::dequantize(nested.codes.data(), nested.state, 0, int64_t(v.size()), back.data());
  double err = 0, ref = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    err += (back[i] - v[i]) * (back[i] - v[i]);
    ref += v[i] * v[i];
  }
  EXPECT_LT(std::sqrt(err / ref), 0.12);  // NF4's typical relative RMS error is ~0.1
}

TEST(Nf4, BitsandbytesSerializationRoundTrip) {
  // A 4304-wide matrix (SigLIP's MLP): blocks of 64 straddle rows.
  const std::vector<float> v = normal_values(3 * 4304, 5, 0.05f);
  const Tensor w = Tensor::from_f32(v, {3, 4304}).converted(DType::BF16);
  const Tensor q = nf4::quantize_tensor(w, true);
  EXPECT_EQ(q.dtype(), DType::NF4);
  EXPECT_EQ(q.nbytes(), 3 * 4304 / 2);
  SafetensorsWriter writer;
  bnb::add_4bit(writer, "mlp.fc2.weight", q);
  const std::string dir = test::scratch_dir("bnb-roundtrip");
  writer.write(dir + "/model.safetensors");
  auto set = SafetensorsSet::open(dir + "/model.safetensors");
  ASSERT_TRUE(bnb::is_4bit(set, "mlp.fc2.weight"));
  for (const auto& name : bnb::entry_names("mlp.fc2.weight")) EXPECT_NE(set.find(name), nullptr) << name;
  const Tensor back = bnb::load_4bit(set, "mlp.fc2.weight");
  EXPECT_EQ(back.shape(), (Shape{3, 4304}));
  const nf4::State& s1 = nf4::state_of(q);
  const nf4::State& s2 = nf4::state_of(back);
  EXPECT_EQ(s2.qabsmax, s1.qabsmax);
  EXPECT_EQ(s2.nested_absmax, s1.nested_absmax);
  EXPECT_FLOAT_EQ(s2.offset, s1.offset);
  EXPECT_EQ(s2.original_dtype, DType::BF16);
  // Row 1 starts inside block 67: dequantize it from both.
  std::vector<float> a(4304), b(4304);
  nf4::dequantize(q.data<const uint8_t>(), s1, 4304, 4304, a.data());
  nf4::dequantize(back.data<const uint8_t>(), s2, 4304, 4304, b.data());
  EXPECT_EQ(a, b);
  for (int i = 0; i < 4304; ++i) EXPECT_NEAR(a[size_t(i)], v[size_t(4304 + i)], 0.05f * 0.6f);
}

TEST(Nf4, MissingQuantStateEntries) {
  const Tensor q = nf4::quantize_tensor(Tensor::from_f32(normal_values(128, 1, 1.0f), {2, 64}), true);
  for (const std::string drop : {".absmax", ".nested_absmax", ".nested_quant_map", ".quant_map", ""}) {
    SafetensorsWriter full;
    bnb::add_4bit(full, "w.weight", q);
    const std::string dir = test::scratch_dir("bnb-missing");
    full.write(dir + "/all.safetensors");
    auto all = SafetensorsFile::open(dir + "/all.safetensors");
    SafetensorsWriter partial;
    for (const auto& e : all->entries())
      if (e.name != "w.weight" + drop) partial.add(e.name, all->tensor(e));
    partial.write(dir + "/model.safetensors");
    auto set = SafetensorsSet::open(dir + "/model.safetensors");
    try {
      bnb::load_4bit(set, "w.weight");
      FAIL() << "expected an error without w.weight" << drop;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("w.weight" + drop), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace unicorn

namespace unicorn {
namespace {

TEST(Nf4, VectorAndScalarDequantizationAgree) {
  const std::vector<float> v = normal_values(64 * 40 + 32, 9, 0.1f);
  const auto q = nf4::quantize(v, true);
  // Ranges starting and ending inside blocks, at odd positions, and whole blocks.
  for (auto [start, count] : {std::pair<int64_t, int64_t>{0, 64 * 40 + 32}, {1, 200}, {63, 130}, {64, 64}, {4304 % 64, 999}}) {
    std::vector<float> a(static_cast<size_t>(count)), b(static_cast<size_t>(count));
    nf4::dequantize(q.codes.data(), q.state, start, count, a.data());
    nf4::dequantize_scalar(q.codes.data(), q.state, start, count, b.data());
    EXPECT_EQ(a, b) << start << " +" << count;
  }
}

}  // namespace
}  // namespace unicorn
