#!/usr/bin/env python3
"""Makes tests/data/gguf/ from the shared reference (see tests/data/gguf/README.md):
the q4_0 GGUF gzipped, the mmproj GGUF, the HF config, and hf-excerpt.safetensors: a few
tensors of the HF checkpoint the GGUFs were converted from (bf16, hub names) and the
astronaut pixel values of the reference image chat as uint8 k (value = k / 127.5 - 1).
Plain Python (no numpy): python3 tools/gguf_testdata/extract.py /path/to/shared/reference"""
import gzip, json, shutil, struct, sys
from pathlib import Path

ref = Path(sys.argv[1]) / "gguf"
out = Path(__file__).resolve().parents[2] / "tests" / "data" / "gguf"
out.mkdir(parents=True, exist_ok=True)

def st_load(path):
    b = path.read_bytes()
    n = struct.unpack_from("<Q", b, 0)[0]
    h = json.loads(b[8:8 + n])
    return {k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in h.items() if k != "__metadata__"}

def st_save(path, tensors):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)

hf = st_load(ref / "tiny-mm-realvocab" / "model.safetensors")
L, V, P = "language_model.model.", "vision_tower.vision_model.", "multi_modal_projector."
names = [L + "layers.0.input_layernorm.weight", L + "layers.0.self_attn.q_norm.weight",
         L + "layers.0.self_attn.k_norm.weight", L + "layers.5.post_feedforward_layernorm.weight",
         L + "norm.weight", L + "layers.0.self_attn.q_proj.weight", L + "layers.5.mlp.down_proj.weight",
         P + "mm_soft_emb_norm.weight", P + "mm_input_projection_weight",
         V + "embeddings.patch_embedding.weight", V + "embeddings.position_embedding.weight",
         V + "encoder.layers.0.mlp.fc1.weight", V + "encoder.layers.1.self_attn.out_proj.bias", V + "post_layernorm.weight"]
excerpt = {n: hf[n] for n in names}
# Rows 2, 105 and 262144 of the token embeddings (<bos>, <start_of_turn>, <image_soft_token>).
dtype, shape, raw = hf[L + "embed_tokens.weight"]
row = shape[1] * 2
excerpt["embed_tokens.rows_2_105_262144"] = ("BF16", [3, shape[1]], b"".join(raw[r * row:(r + 1) * row] for r in (2, 105, 262144)))

r = st_load(ref / "tiny-mm-realvocab" / "reference.safetensors")
dtype, shape, raw = r["image_chat.pixel_values"]
vals = struct.unpack("<%df" % (len(raw) // 4), raw)
k = [round((v + 1) * 127.5) for v in vals]
assert all(abs(kk / 127.5 - 1 - v) < 1e-6 for kk, v in zip(k, vals)), "pixel values are not k / 127.5 - 1"
excerpt["image_chat.pixel_values_u8"] = ("U8", shape, bytes(k))
st_save(out / "hf-excerpt.safetensors", excerpt)

shutil.copyfile(ref / "tiny-mm-realvocab" / "config.json", out / "config.json")
shutil.copyfile(ref / "mmproj-tiny-mm-realvocab-f16.gguf", out / "mmproj-tiny-mm-realvocab-f16.gguf")
with open(ref / "tiny-mm-realvocab-q4_0.gguf", "rb") as src, gzip.GzipFile(out / "tiny-mm-realvocab-q4_0.gguf.gz", "wb", 9, mtime=0) as dst:
    shutil.copyfileobj(src, dst)
print("wrote", sorted(p.name for p in out.iterdir()))
