"""Writes bench/data/demo_dialogues.txt: text in the demo model's own domain for
`unicorn perplexity`: chat-formatted conversations built from the word lists of
tools/demo_model/shapes.py, without the pictures (perplexity reads text only). Half are the
text-only conversations (greeting, abilities) that the model answers exactly; half ask about a
shape with no picture shown, so the colour / shape / position words of those answers are
guesses and only their wording is predictable.
Deterministic, standard library only:
  python3 bench/make_demo_dialogues.py > bench/data/demo_dialogues.txt
"""
import ast
import random
import sys
from pathlib import Path

# The constants of shapes.py, read without importing it (it needs numpy to draw).
src = (Path(__file__).resolve().parent.parent / "tools" / "demo_model" / "shapes.py").read_text()
consts = {}
for node in ast.parse(src).body:
    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
        try:
            consts[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            pass
for name in ("GREETING", "ABILITIES"):  # TEXT_ONLY refers to these two by name
    src = src.replace(name + ")", repr(consts[name]) + ")")
text_only = ast.literal_eval(src.split("TEXT_ONLY = ", 1)[1].split("\n]\n", 1)[0] + "\n]")
colors, shapes, positions, questions = (list(consts["COLORS"]), consts["SHAPES"], list(consts["POSITIONS"]),
                                        consts["QUESTIONS"])


def answer(kind, color, shape, position):  # shapes.answer
    return {"describe": f"A {color} {shape} in the {position}.", "color": f"The shape is {color}.",
            "shape": f"It is a {shape}.", "position": f"It is in the {position}."}[kind]


rng = random.Random(5)
out = []
for i in range(120):
    turns = []
    if i % 2 == 0:
        prompts, reply = text_only[rng.randrange(len(text_only))]
        turns.append((rng.choice(prompts), reply))
    else:
        color, shape, position = rng.choice(colors), rng.choice(shapes), rng.choice(positions)
        for _ in range(1 + rng.randrange(3)):
            kind = rng.choice(list(questions))
            turns.append((rng.choice(questions[kind]), answer(kind, color, shape, position)))
    text = "<bos>"
    for q, a in turns:
        text += f"<start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n{a}<end_of_turn>\n"
    out.append(text)
sys.stdout.write("".join(out))
