"""Trains the bundled demo model: a tiny Gemma3ForConditionalGeneration (SigLIP vision tower,
the real Gemma 3 tokenizer) that answers questions about pictures of coloured shapes.

Runs on the GPU machine (torch, transformers 5, tokenizers):
    python3 tools/demo_model/train.py --out OUT_DIR [--minutes 7]
Writes a Hugging Face folder (config.json, generation_config.json, sharded bf16 safetensors)
and eval.json (greedy accuracy of the bf16 model on fresh pictures, per question type).
The chat format and image expansion are those of unicorn's chat_format.cpp and the Gemma 3
template: images become "\n\n<start_of_image>" + 16 x <image_soft_token> + "<end_of_image>\n\n".
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOKENS_PER_IMAGE = 16
IMAGE_TOKEN, BOI, EOI, END_OF_TURN = 262144, 255999, 256000, 106


def load_tokenizer():
    from tokenizers import Tokenizer
    with gzip.open(os.path.join(REPO, "models", "demo", "tokenizer.json.gz"), "rb") as f:
        return Tokenizer.from_str(f.read().decode("utf-8"))


class Encoder:
    """Chat text to ids, piece by piece as inference sees it: each prompt segment is
    tokenized alone, each answer alone (what the model must generate), then <end_of_turn>."""

    def __init__(self, tok):
        self.tok = tok
        self.cache = {}
        self.expanded_image = ("\n\n<start_of_image>" + "<image_soft_token>" * TOKENS_PER_IMAGE +
                               "<end_of_image>\n\n")

    def ids(self, text):
        if text not in self.cache:
            self.cache[text] = self.tok.encode(text, add_special_tokens=False).ids
        return self.cache[text]

    def user_text(self, parts):
        out = ""
        for kind, value in parts:
            out += self.expanded_image if kind == "image" else value.strip()
        return out

    def conversation(self, turns):
        ids, labels, images = [], [], []
        for t, (parts, answer) in enumerate(turns):
            prefix = "<bos>" if t == 0 else "\n"
            prompt = prefix + "<start_of_turn>user\n" + self.user_text(parts) + "<end_of_turn>\n<start_of_turn>model\n"
            p = self.ids(prompt)
            a = self.ids(answer) + [END_OF_TURN]
            ids += p + a
            labels += [-100] * len(p) + a
            images += [v for k, v in parts if k == "image"]  # (array, attributes)
        return ids, labels, images


def make_model(device, args):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration
    layers = args.layers
    text = dict(
        vocab_size=262208, hidden_size=args.hidden, intermediate_size=4 * args.hidden, num_hidden_layers=layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads, head_dim=args.head_dim,
        query_pre_attn_scalar=args.head_dim, sliding_window=128,
        max_position_embeddings=4096, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
        layer_types=["full_attention" if i % 2 else "sliding_attention" for i in range(layers)],
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}},
        eos_token_id=[1, END_OF_TURN], bos_token_id=2, pad_token_id=0)
    vision = dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                  image_size=224, patch_size=14, layer_norm_eps=1e-6, vision_use_head=False)
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=TOKENS_PER_IMAGE,
                       boi_token_index=BOI, eoi_token_index=EOI, image_token_index=IMAGE_TOKEN,
                       eos_token_id=[1, END_OF_TURN])
    model = Gemma3ForConditionalGeneration(cfg)
    return model.to(device)


def pixels(images, device):
    x = torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float()
    return (x / 255.0 - 0.5) / 0.5  # rescale 1/255, normalize mean 0.5 std 0.5


def batch(enc, rng, size, device):
    convs = [enc.conversation(shapes.random_conversation(rng)) for _ in range(size)]
    n = max(len(c[0]) for c in convs)
    ids = torch.zeros((size, n), dtype=torch.long)
    lab = torch.full((size, n), -100, dtype=torch.long)
    mask = torch.zeros((size, n), dtype=torch.long)
    images = []
    for i, (a, b, im) in enumerate(convs):
        ids[i, :len(a)] = torch.tensor(a)
        lab[i, :len(b)] = torch.tensor(b)
        mask[i, :len(a)] = 1
        images += im
    ids, lab, mask = ids.to(device), lab.to(device), mask.to(device)
    pix = pixels([im for im, _ in images], device) if images else None
    attrs = torch.tensor([[list(shapes.COLORS).index(c), shapes.SHAPES.index(s), list(shapes.POSITIONS).index(p)]
                          for _, (c, s, p) in images], device=device) if images else None
    return ids, lab, mask, pix, attrs


class AuxHead(torch.nn.Module):
    """Training-only classifier on the projected image features (color, shape, position):
    a direct signal that teaches the from-scratch vision tower what to see. Not saved."""

    def __init__(self, hidden):
        super().__init__()
        n = TOKENS_PER_IMAGE * hidden
        self.heads = torch.nn.ModuleList([torch.nn.Linear(n, len(shapes.COLORS)), torch.nn.Linear(n, len(shapes.SHAPES)),
                                          torch.nn.Linear(n, len(shapes.POSITIONS))])

    def forward(self, feats, attrs):
        x = feats.flatten(1).float()
        return sum(F.cross_entropy(h(x), attrs[:, i]) for i, h in enumerate(self.heads))


def loss_of(model, ids, lab, mask, pix, attrs=None, aux=None):
    captured = {}
    hook = model.model.multi_modal_projector.register_forward_hook(lambda m, i, o: captured.setdefault("f", o))
    out = model.model(input_ids=ids, attention_mask=mask, pixel_values=pix,
                      token_type_ids=(ids == IMAGE_TOKEN).long(), use_cache=False)
    h = out.last_hidden_state[:, :-1]
    target = lab[:, 1:]
    sel = target != -100
    logits = model.lm_head(h[sel]).float()
    hook.remove()
    loss = F.cross_entropy(logits, target[sel])
    if aux is not None and attrs is not None:
        loss = loss + 0.5 * aux(captured["f"], attrs)
    return loss


@torch.no_grad()
def greedy(model, ids, pix, max_new=24):
    ids = list(ids)
    past = None
    out = []
    cur = torch.tensor([ids], device=pix.device if pix is not None else "cuda")
    for _ in range(max_new):
        tt = (cur == IMAGE_TOKEN).long()
        r = model(input_ids=cur, pixel_values=pix if past is None else None, token_type_ids=tt,
                  past_key_values=past, use_cache=True)
        past = r.past_key_values
        nxt = int(r.logits[0, -1].argmax())
        if nxt in (1, END_OF_TURN):
            break
        out.append(nxt)
        cur = torch.tensor([[nxt]], device=cur.device)
    return out


def evaluate(model, enc, tok, device, n=200, seed=12345):
    rng = np.random.default_rng(seed)
    correct = {k: 0 for k in shapes.QUESTIONS}
    for i in range(n):
        img, attrs = shapes.random_scene(rng)
        for kind, qs in shapes.QUESTIONS.items():
            prompt = enc.ids("<bos><start_of_turn>user\n" + enc.user_text([("image", img), ("text", qs[0])]) +
                             "<end_of_turn>\n<start_of_turn>model\n")
            got = tok.decode(greedy(model, prompt, pixels([img], device)))
            correct[kind] += got == shapes.answer(kind, *attrs)
    text_ok = 0
    for prompts, reply in shapes.TEXT_ONLY:
        prompt = enc.ids("<bos><start_of_turn>user\n" + prompts[0] + "<end_of_turn>\n<start_of_turn>model\n")
        text_ok += tok.decode(greedy(model, prompt, None)) == reply
    return {k: v / n for k, v in correct.items()} | {"text_only": text_ok / len(shapes.TEXT_ONLY), "n": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=6.3)
    ap.add_argument("--max-steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-n", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--aux", type=int, default=1, help="auxiliary attribute loss on the image features")
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    device = "cuda"
    tok = load_tokenizer()
    enc = Encoder(tok)
    model = make_model(device, args)
    aux = AuxHead(args.hidden).to(device) if args.aux else None
    params = list(model.parameters()) + (list(aux.parameters()) if aux else [])
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0, betas=(0.9, 0.98))
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    budget = args.minutes * 60
    step = 0
    log = []
    while step < args.max_steps and time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        lr = args.lr * min(1.0, (step + 1) / 200) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))
        for g in opt.param_groups:
            g["lr"] = lr
        ids, lab, mask, pix, attrs = batch(enc, rng, args.batch, device)
        loss = loss_of(model, ids, lab, mask, pix, attrs, aux)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            line = f"step {step} loss {loss.item():.4f} lr {lr:.2e} t {time.time() - t0:.0f}s"
            print(line, flush=True)
            log.append(line)
        step += 1
    # Evaluate as unicorn computes: bf16 weights, f32 arithmetic.
    model = model.to(torch.bfloat16).to(torch.float32).eval()
    acc = evaluate(model, enc, tok, device, n=args.eval_n)
    print("eval (bf16, greedy):", acc, flush=True)
    os.makedirs(args.out, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(args.out, max_shard_size="12MB")
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump({"steps": step, "seconds": time.time() - t0, "accuracy": acc, "log": log[-20:]}, f, indent=1)


if __name__ == "__main__":
    main()
