#include "support/shapes.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace unicorn::test::shapes {

const std::vector<NamedColor>& colors() {
  static const std::vector<NamedColor> v = {
      {"red", {220, 30, 30}},     {"green", {30, 170, 40}},   {"blue", {30, 60, 220}},
      {"yellow", {235, 200, 20}}, {"purple", {140, 40, 170}}, {"orange", {245, 130, 20}},
  };
  return v;
}

const std::vector<Rgb>& backgrounds() {
  static const std::vector<Rgb> v = {
      {255, 255, 255}, {235, 235, 235}, {245, 235, 210}, {210, 230, 245}, {40, 40, 40}};
  return v;
}

const std::vector<std::string_view>& shape_names() {
  static const std::vector<std::string_view> v = {"circle", "square", "triangle", "diamond"};
  return v;
}

const std::vector<Anchor>& positions() {
  static const std::vector<Anchor> v = {
      {"top left", 56, 56}, {"top right", 168, 56}, {"center", 112, 112}, {"bottom left", 56, 168},
      {"bottom right", 168, 168}};
  return v;
}

std::string_view question_name(Question q) {
  switch (q) {
    case Question::Describe: return "describe";
    case Question::Color: return "color";
    case Question::Shape: return "shape";
    case Question::Position: return "position";
  }
  return "?";
}

std::string_view question_text(Question q) {
  switch (q) {
    case Question::Describe: return "What do you see?";
    case Question::Color: return "What color is the shape?";
    case Question::Shape: return "What shape is it?";
    case Question::Position: return "Where is it?";
  }
  return "?";
}

std::string answer(Question q, const Scene& s) {
  switch (q) {
    case Question::Describe: return "A " + s.color + " " + s.shape + " in the " + s.position + ".";
    case Question::Color: return "The shape is " + s.color + ".";
    case Question::Shape: return "It is a " + s.shape + ".";
    case Question::Position: return "It is in the " + s.position + ".";
  }
  return "?";
}

bool in_shape(std::string_view shape, int64_t x, int64_t y, int cx, int cy, int radius) {
  // shapes.py computes on float32 pixel grids with numpy 2 (the training machine's 2.5):
  // a float32 array minus an np.int64 scalar promotes to float64, and 0.85 * r, 0.8 * r are
  // float64, so double arithmetic in the same order gives the same pixels, edge cases included.
  const double dx = double(x) - cx, dy = double(y) - cy, r = radius;
  if (shape == "circle") return dx * dx + dy * dy <= r * r;
  if (shape == "square") {
    const double s = 0.85 * r;
    return std::fabs(dx) <= s && std::fabs(dy) <= s;
  }
  if (shape == "diamond") return std::fabs(dx) + std::fabs(dy) <= r;
  if (shape == "triangle") {
    // Apex (cx, cy - r), base y = cy + 0.8 r from cx - r to cx + r.
    const double top = double(cy - radius), bottom = double(cy) + 0.8 * r;
    const double t = (double(y) - top) / (bottom - top);  // 0 at the apex, 1 at the base
    return double(y) >= top && double(y) <= bottom && std::fabs(dx) <= t * r;
  }
  throw std::invalid_argument("unknown shape " + std::string(shape));
}

namespace {
// numpy's rng.integers(lo, hi): uniform in [lo, hi).
int uniform(std::mt19937& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi - 1)(rng); }
}  // namespace

Scene random_scene(std::mt19937& rng) {
  // The draws of shapes.random_scene then shapes.render, in the same order.
  Scene s;
  const NamedColor& color = colors()[size_t(uniform(rng, 0, int(colors().size())))];
  s.color = color.name;
  s.shape = shape_names()[size_t(uniform(rng, 0, int(shape_names().size())))];
  const Anchor& anchor = positions()[size_t(uniform(rng, 0, int(positions().size())))];
  s.position = anchor.name;
  s.background = backgrounds()[size_t(uniform(rng, 0, int(backgrounds().size())))];
  s.cx = anchor.x + uniform(rng, -12, 13);
  s.cy = anchor.y + uniform(rng, -12, 13);
  s.radius = uniform(rng, 22, 41);
  for (size_t c = 0; c < 3; ++c) s.fill[c] = uint8_t(std::clamp(int(color.rgb[c]) + uniform(rng, -16, 17), 0, 255));
  return s;
}

vision::RgbImage render(const Scene& s) {
  vision::RgbImage img = vision::RgbImage::allocate(kSize, kSize);
  for (int64_t y = 0; y < kSize; ++y) {
    uint8_t* row = img.row(y);
    for (int64_t x = 0; x < kSize; ++x) {
      const Rgb& c = in_shape(s.shape, x, y, s.cx, s.cy, s.radius) ? s.fill : s.background;
      std::copy(c.begin(), c.end(), row + x * 3);
    }
  }
  return img;
}

Picture random_picture(std::mt19937& rng) {
  Scene s = random_scene(rng);
  vision::RgbImage img = render(s);
  return {std::move(img), std::move(s)};
}

}  // namespace unicorn::test::shapes
