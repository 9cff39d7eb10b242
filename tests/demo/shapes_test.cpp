// The C++ scene renderer (tests/support/shapes.h) draws the pixels tools/demo_model/shapes.py
// draws. The golden figures come from shapes.shape_mask itself (numpy 2.5.2 on the GPU
// machine that trains the model), so a wrong formula, a flipped triangle or a float32/float64
// slip on an edge pixel shows up here rather than as a slightly worse demo accuracy.
#include "support/shapes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

namespace unicorn {
namespace {

namespace sh = test::shapes;

TEST(DemoShapes, MasksMatchShapesPy) {
  // For each shape, over every radius 22..40 and every centre row an anchor + jitter can give
  // (cx = 112: the masks only move with cx, dx being exact): the pixel count and the sum of
  // (1 + y * 224 + x) over the mask's pixels, then the pixel count at two other centres.
  struct Golden {
    int64_t count, weighted, at_56_168_r22, at_168_56_r40;
  };
  const std::map<std::string, Golden> golden = {
      {"circle", {4424625, 111504974625, 1517, 5025}},
      {"square", {4099425, 103309609425, 1369, 4761}},
      {"triangle", {2558380, 68266172876, 872, 2929}},
      {"diamond", {2914125, 73438864125, 1013, 3281}},
  };
  std::set<int> rows;
  for (int ay : {56, 112, 168})
    for (int j = -12; j <= 12; ++j) rows.insert(ay + j);
  for (const auto& [shape, g] : golden) {
    int64_t count = 0, weighted = 0;
    // Only the square around the centre is visited (every shape lies within r of it) to keep
    // the sanitizer build quick; the two counts below look at the whole image.
    for (int r = 22; r <= 40; ++r)
      for (int cy : rows)
        for (int64_t y = std::max(0, cy - r - 2); y < std::min<int64_t>(sh::kSize, cy + r + 3); ++y)
          for (int64_t x = 112 - r - 2; x < 112 + r + 3; ++x)
            if (sh::in_shape(shape, x, y, 112, cy, r)) {
              ++count;
              weighted += 1 + y * sh::kSize + x;
            }
    auto count_at = [&](int cx, int cy, int r) {
      int64_t n = 0;
      for (int64_t y = 0; y < sh::kSize; ++y)
        for (int64_t x = 0; x < sh::kSize; ++x) n += sh::in_shape(shape, x, y, cx, cy, r);
      return n;
    };
    EXPECT_EQ(count, g.count) << shape;
    EXPECT_EQ(weighted, g.weighted) << shape;
    EXPECT_EQ(count_at(56, 168, 22), g.at_56_168_r22) << shape;
    EXPECT_EQ(count_at(168, 56, 40), g.at_168_56_r40) << shape;
  }
}

TEST(DemoShapes, TriangleApexUpBaseDown) {
  // Apex at (cx, cy - r), base at y = cy + 0.8 r spanning cx - r .. cx + r.
  EXPECT_TRUE(sh::in_shape("triangle", 100, 70, 100, 100, 30));
  EXPECT_FALSE(sh::in_shape("triangle", 101, 70, 100, 100, 30));
  EXPECT_TRUE(sh::in_shape("triangle", 70, 124, 100, 100, 30));
  EXPECT_TRUE(sh::in_shape("triangle", 130, 124, 100, 100, 30));
  EXPECT_FALSE(sh::in_shape("triangle", 100, 125, 100, 100, 30));
}

TEST(DemoShapes, ScenesCoverTheDistribution) {
  std::mt19937 rng(1);
  std::set<std::string> colors, shapes, positions;
  std::set<sh::Rgb> backgrounds;
  int min_r = 100, max_r = 0, max_jitter = 0, max_color_jitter = 0;
  for (int i = 0; i < 2000; ++i) {
    const sh::Scene s = sh::random_scene(rng);
    colors.insert(s.color);
    shapes.insert(s.shape);
    positions.insert(s.position);
    backgrounds.insert(s.background);
    min_r = std::min(min_r, s.radius);
    max_r = std::max(max_r, s.radius);
    for (const auto& a : sh::positions())
      if (a.name == s.position) max_jitter = std::max({max_jitter, std::abs(s.cx - a.x), std::abs(s.cy - a.y)});
    for (const auto& c : sh::colors())
      if (c.name == s.color)
        for (size_t k = 0; k < 3; ++k) max_color_jitter = std::max(max_color_jitter, std::abs(int(s.fill[k]) - c.rgb[k]));
  }
  EXPECT_EQ(colors.size(), 6u);
  EXPECT_EQ(shapes.size(), 4u);
  EXPECT_EQ(positions.size(), 5u);
  EXPECT_EQ(backgrounds.size(), 5u);
  EXPECT_EQ(min_r, 22);
  EXPECT_EQ(max_r, 40);
  EXPECT_EQ(max_jitter, 12);
  EXPECT_EQ(max_color_jitter, 16);
}

TEST(DemoShapes, RenderPaintsTheShapeOnTheBackground) {
  sh::Scene s;
  s.color = "blue";
  s.shape = "square";
  s.position = "center";
  s.cx = 112;
  s.cy = 112;
  s.radius = 20;  // half side 17
  s.fill = {30, 60, 220};
  s.background = {245, 235, 210};
  const vision::RgbImage img = sh::render(s);
  ASSERT_EQ(img.width, 224);
  ASSERT_EQ(img.height, 224);
  auto at = [&](int64_t x, int64_t y) { return sh::Rgb{img.pixel(x, y)[0], img.pixel(x, y)[1], img.pixel(x, y)[2]}; };
  EXPECT_EQ(at(112, 112), s.fill);
  EXPECT_EQ(at(95, 129), s.fill);
  EXPECT_EQ(at(94, 112), s.background);
  EXPECT_EQ(at(0, 0), s.background);
  EXPECT_EQ(sh::answer(sh::Question::Describe, s), "A blue square in the center.");
  EXPECT_EQ(sh::answer(sh::Question::Color, s), "The shape is blue.");
  EXPECT_EQ(sh::answer(sh::Question::Shape, s), "It is a square.");
  EXPECT_EQ(sh::answer(sh::Question::Position, s), "It is in the center.");
}

}  // namespace
}  // namespace unicorn
