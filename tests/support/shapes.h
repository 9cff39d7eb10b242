// Pictures of one coloured shape, drawn as tools/demo_model/shapes.py draws the demo model's
// training data (same colours, backgrounds, shapes and mask formulas, anchors, jitter and
// radius ranges, 224 x 224, no anti-aliasing), and the answers the demo model was taught.
// The random stream is std::mt19937's, not numpy's: the scenes come from the same
// distribution but are pictures the model never saw in training.
#pragma once

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "vision/image.h"

namespace unicorn::test::shapes {

inline constexpr int64_t kSize = 224;

using Rgb = std::array<uint8_t, 3>;

struct NamedColor {
  std::string_view name;
  Rgb rgb;
};
struct Anchor {
  std::string_view name;
  int x, y;
};

// In shapes.py's order (COLORS, BACKGROUNDS, SHAPES, POSITIONS).
const std::vector<NamedColor>& colors();
const std::vector<Rgb>& backgrounds();
const std::vector<std::string_view>& shape_names();
const std::vector<Anchor>& positions();

inline constexpr std::string_view kGreeting = "Hello! Show me a picture of a shape and ask me about it.";
inline constexpr std::string_view kAbilities = "I can tell you the shape, color and position of a shape in a picture.";

// The four question kinds and their canonical wording (the first of each list in shapes.py).
enum class Question { Describe, Color, Shape, Position };
inline constexpr std::array<Question, 4> kQuestions = {Question::Describe, Question::Color, Question::Shape,
                                                        Question::Position};
std::string_view question_name(Question q);  // "describe", "color", "shape", "position"
std::string_view question_text(Question q);  // "What do you see?", ...

struct Scene {
  std::string color, shape, position;  // the attributes the answers name
  int cx = 0, cy = 0, radius = 0;       // centre (anchor + jitter) and radius in pixels
  Rgb fill{}, background{};             // the jittered shape colour and the background
};

// shapes.answer: "A red circle in the top left.", "The shape is red.", ...
std::string answer(Question q, const Scene& scene);

// Whether the pixel centre (x, y) lies inside the shape (shapes.shape_mask, same arithmetic).
bool in_shape(std::string_view shape, int64_t x, int64_t y, int cx, int cy, int radius);

// shapes.random_scene: a random colour, shape and position, then shapes.render's random
// background, jitter, radius and colour jitter.
Scene random_scene(std::mt19937& rng);
// The picture of a scene.
vision::RgbImage render(const Scene& scene);

struct Picture {
  vision::RgbImage image;
  Scene scene;
};
// A random scene and its picture.
Picture random_picture(std::mt19937& rng);

}  // namespace unicorn::test::shapes
