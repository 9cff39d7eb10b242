"""Synthetic data for the demo model: pictures of one coloured shape and questions about it.

The answer grammar (also in models/demo/README.md, and checked by tests/demo/ in C++):
  describe  "What do you see?"          -> "A {color} {shape} in the {position}."
  color     "What color is the shape?"  -> "The shape is {color}."
  shape     "What shape is it?"         -> "It is a {shape}."
  position  "Where is it?"              -> "It is in the {position}."
  greeting  "Hello!"                    -> GREETING
  abilities "What can you do?"          -> ABILITIES

Rendering (numpy only, no anti-aliasing; the C++ tests draw the same way):
  224 x 224 RGB, a solid background, one shape of radius 22..40 px whose centre is one of
  five anchors (56, 56) (168, 56) (112, 112) (56, 168) (168, 168) moved by up to 12 px,
  colour jittered by up to 16 levels per channel.
"""
import numpy as np

SIZE = 224
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 200, 20),
    "purple": (140, 40, 170),
    "orange": (245, 130, 20),
}
BACKGROUNDS = [(255, 255, 255), (235, 235, 235), (245, 235, 210), (210, 230, 245), (40, 40, 40)]
SHAPES = ["circle", "square", "triangle", "diamond"]
POSITIONS = {
    "top left": (56, 56),
    "top right": (168, 56),
    "center": (112, 112),
    "bottom left": (56, 168),
    "bottom right": (168, 168),
}
GREETING = "Hello! Show me a picture of a shape and ask me about it."
ABILITIES = "I can tell you the shape, color and position of a shape in a picture."

QUESTIONS = {
    "describe": ["What do you see?", "Describe the image.", "What is in the picture?"],
    "color": ["What color is the shape?", "What colour is it?", "Which color is the shape?"],
    "shape": ["What shape is it?", "What shape do you see?", "Which shape is this?"],
    "position": ["Where is it?", "Where is the shape?", "Where is the shape in the picture?"],
}
TEXT_ONLY = [
    (["Hello!", "Hi", "Hello", "Hi there!", "Good morning"], GREETING),
    (["What can you do?", "What do you do?", "How can you help me?"], ABILITIES),
]


def answer(kind, color, shape, position):
    if kind == "describe":
        return f"A {color} {shape} in the {position}."
    if kind == "color":
        return f"The shape is {color}."
    if kind == "shape":
        return f"It is a {shape}."
    return f"It is in the {position}."


_GRID_Y, _GRID_X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def shape_mask(shape, cx, cy, r):
    """Boolean [SIZE, SIZE] mask: pixel centres inside the shape."""
    y, x = _GRID_Y, _GRID_X
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        s = 0.85 * r
        return (np.abs(dx) <= s) & (np.abs(dy) <= s)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    # triangle: apex (cx, cy - r), base y = cy + 0.8 r from cx - r to cx + r
    top, bottom = cy - r, cy + 0.8 * r
    t = (y - top) / (bottom - top)  # 0 at the apex, 1 at the base
    return (y >= top) & (y <= bottom) & (np.abs(dx) <= t * r)


def render(rng, color, shape, position):
    bg = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = bg
    ax, ay = POSITIONS[position]
    cx = ax + rng.integers(-12, 13)
    cy = ay + rng.integers(-12, 13)
    r = rng.integers(22, 41)
    base = np.array(COLORS[color], np.int32)
    c = np.clip(base + rng.integers(-16, 17, size=3), 0, 255).astype(np.uint8)
    img[shape_mask(shape, cx, cy, r)] = c
    return img


def random_scene(rng):
    color = list(COLORS)[rng.integers(len(COLORS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    position = list(POSITIONS)[rng.integers(len(POSITIONS))]
    return render(rng, color, shape, position), (color, shape, position)


def random_conversation(rng):
    """A list of (user_parts, answer) turns; user_parts mixes ("image", (array, attributes))
    and ("text", str), attributes being (color, shape, position)."""
    turns, images = [], []
    kind = rng.random()
    if kind < 0.08:  # text only
        prompts, reply = TEXT_ONLY[rng.integers(len(TEXT_ONLY))]
        turns.append(([("text", prompts[rng.integers(len(prompts))])], reply))
        return turns
    n_turns = 1 + int(rng.integers(3))
    attrs = None
    for t in range(n_turns):
        parts = []
        # A picture in the first turn, sometimes a new one later.
        if t == 0 or rng.random() < 0.3:
            img, attrs = random_scene(rng)
            parts.append(("image", (img, attrs)))
        q_kind = list(QUESTIONS)[rng.integers(len(QUESTIONS))]
        qs = QUESTIONS[q_kind]
        parts.append(("text", qs[rng.integers(len(qs))]))
        turns.append((parts, answer(q_kind, *attrs)))
    return turns
