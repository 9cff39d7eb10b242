// Writes small seed inputs for the fuzz targets into the given folders: GGUF files with
// every metadata type (nested arrays included) and tensors of every type GGUF holds here,
// and a safetensors file with several dtypes and metadata. Small seeds keep each fuzzing
// execution fast; scripts/fuzz.sh adds the repository's real files too.
#include <cstdio>
#include <string>
#include <vector>

#include "formats/gguf_writer.h"
#include "formats/safetensors.h"

using namespace unicorn;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s GGUF_DIR SAFETENSORS_DIR\n", argv[0]);
    return 2;
  }
  const std::string gguf_dir = argv[1], st_dir = argv[2];
  GgufWriter w;
  w.set_string("general.architecture", "gemma3");
  w.set_u8("t.u8", 1);
  w.set_i8("t.i8", -1);
  w.set_u16("t.u16", 2);
  w.set_i16("t.i16", -2);
  w.set_u32("gemma3.block_count", 1);
  w.set_i32("t.i32", -3);
  w.set_u64("t.u64", 4);
  w.set_i64("t.i64", -4);
  w.set_f32("t.f32", 0.5f);
  w.set_f64("t.f64", 0.25);
  w.set_bool("t.bool", true);
  const std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "a", "b", "ab"};
  w.set_array("tokenizer.ggml.tokens", GgufWriter::Array::of(std::span<const std::string>(tokens)));
  const std::vector<float> scores = {0, 0, 0, 0, 0, -1};
  w.set_array("tokenizer.ggml.scores", GgufWriter::Array::of(std::span<const float>(scores)));
  const std::vector<int32_t> types = {3, 3, 3, 1, 1, 1};
  w.set_array("tokenizer.ggml.token_type", GgufWriter::Array::of(std::span<const int32_t>(types)));
  w.set_array("t.bools", GgufWriter::Array::of_bools({true, false}));
  const std::vector<GgufWriter::Array> inner = {GgufWriter::Array::of(std::span<const int32_t>(types)),
                                                GgufWriter::Array::of(std::span<const std::string>(tokens))};
  w.set_array("t.nested", GgufWriter::Array::of(std::span<const GgufWriter::Array>(inner)));
  w.add("f32", Tensor::from_f32(std::vector<float>{1, 2, 3, 4}, {2, 2}));
  w.add("f16", Tensor::zeros(DType::F16, {3}));
  w.add("bf16", Tensor::zeros(DType::BF16, {1, 1, 1, 2}));
  w.add("i32", Tensor::zeros(DType::I32, {2}));
  for (DType d : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K})
    w.add(std::string(dtype_name(d)), Tensor::zeros(d, {1, dtype_info(d).block_elems}));
  w.write(gguf_dir + "/seed-all-types.gguf");
  w.set_alignment(64);
  w.write(gguf_dir + "/seed-aligned-64.gguf");
  GgufWriter empty;
  empty.set_string("general.architecture", "clip");
  empty.write(gguf_dir + "/seed-metadata-only.gguf");

  SafetensorsWriter s;
  s.add("a", Tensor::from_f32(std::vector<float>{1, 2, 3, 4}, {2, 2}));
  s.add("b", Tensor::zeros(DType::BF16, {3}));
  s.add("c", Tensor::zeros(DType::I64, {1}));
  s.add("empty", Tensor::zeros(DType::U8, {0}));
  s.set_metadata("format", "pt");
  s.write(st_dir + "/seed-small.safetensors");
  return 0;
}
