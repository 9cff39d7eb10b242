#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "formats/gguf_writer.h"
#include "formats/mapped_file.h"
#include "support/gguf_reference.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

// --- hand-built GGUF bytes, for inputs our writer would never produce ------------------------

struct Bytes {
  std::string s;
  Bytes& raw(std::string_view b) { s += b; return *this; }
  template <class T>
  Bytes& num(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    s.append(b, sizeof(T));
    return *this;
  }
  Bytes& u32(uint32_t v) { return num(v); }
  Bytes& u64(uint64_t v) { return num(v); }
  Bytes& str(std::string_view v) { return u64(v.size()).raw(v); }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  }
  // A tensor info: name, ne (ggml order), ggml type, offset.
  Bytes& tensor(std::string_view name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset) {
    str(name).u32(uint32_t(ne.size()));
    for (uint64_t d : ne) u64(d);
    return u32(type).u64(offset);
  }
  // Zero padding to a multiple of `a`, then `n` data bytes.
  Bytes& data(uint64_t n, uint64_t a = 32) {
    s.append((a - s.size() % a) % a, '\0');
    s.append(n, '\x11');
    return *this;
  }
};

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kIQ2_XS = 17;

// Expects parsing `bytes` to fail with an Error naming the file and holding every one of `parts`.
void expect_error(const std::string& bytes, std::initializer_list<std::string> parts) {
  try {
    GgufFile::open_buffer(bytes.data(), bytes.size(), "bad.gguf");
    ADD_FAILURE() << "expected an error for input of " << bytes.size() << " bytes";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

// Parses a copy of `bytes` that the file keeps alive (its strings and tensors are views).
std::shared_ptr<GgufFile> parse(const std::string& bytes) {
  auto keep = std::make_shared<const std::string>(bytes);
  return GgufFile::open_buffer(keep->data(), keep->size(), "mem.gguf", keep);
}

// --- llama.cpp's files ----------------------------------------------------------------------

TEST(Gguf, ReadsLlamaCppTextModel) {
  const auto f = test::reference_text_gguf();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_offset() % 32, 0u);
  EXPECT_EQ(f->metadata().size(), 34u);
  EXPECT_EQ(f->get_string("general.architecture"), "gemma3");
  EXPECT_EQ(f->get_u32("gemma3.block_count"), 6u);
  EXPECT_EQ(f->get_u32("gemma3.embedding_length"), 32u);
  EXPECT_EQ(f->get_u32("gemma3.attention.sliding_window"), 8u);
  EXPECT_EQ(f->get_f32("gemma3.rope.freq_base"), 1e6f);
  EXPECT_EQ(f->get_f32("gemma3.rope.scaling.factor"), 8.0f);
  EXPECT_EQ(f->get_string("gemma3.rope.scaling.type"), "linear");
  EXPECT_FLOAT_EQ(f->get_f32("gemma3.attention.layer_norm_rms_epsilon"), 1e-6f);
  EXPECT_EQ(f->get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "llama");
  const auto tokens = f->get_string_array("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 262208u);
  EXPECT_EQ(tokens[2], "<bos>");
  EXPECT_EQ(tokens[106], "<end_of_turn>");
  EXPECT_EQ(tokens[262144], "<image_soft_token>");
  const std::vector<float> scores = f->get_f32_array("tokenizer.ggml.scores");
  EXPECT_EQ(scores[1000], -2280.0f);  // "put": -(first merge rank + 1)
  const std::vector<int32_t> types = f->get_i32_array("tokenizer.ggml.token_type");
  EXPECT_EQ(types[2], 3);    // control
  EXPECT_EQ(types[107], 4);  // user defined "\n"
  EXPECT_EQ(types[238], 6);  // byte <0x00>
  EXPECT_NE(f->get("tokenizer.chat_template").as_string()->find("<start_of_turn>"), std::string::npos);

  ASSERT_EQ(f->tensors().size(), 80u);
  const GgufTensorInfo* embd = f->find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->type->name, "Q8_0");
  EXPECT_EQ(embd->ne, (std::vector<int64_t>{32, 262208}));
  EXPECT_EQ(embd->shape, (Shape{262208, 32}));
  EXPECT_EQ(embd->bytes, 262208u / 1 * 34);  // one 34-byte block per 32-value row
  const Tensor q = f->tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q.dtype(), DType::Q4_0);
  EXPECT_EQ(q.shape(), (Shape{64, 32}));  // [out, in] as in PyTorch
  const Tensor norm = f->tensor("output_norm.weight");
  EXPECT_EQ(norm.dtype(), DType::F32);
  EXPECT_EQ(norm.shape(), (Shape{32}));
  EXPECT_EQ(f->tensor("token_embd.weight").dtype(), DType::Q8_0);
}

TEST(Gguf, ReadsLlamaCppMmproj) {
  const auto f = test::reference_mmproj();
  EXPECT_EQ(f->get_string("general.architecture"), "clip");
  EXPECT_EQ(f->get_string("clip.projector_type"), "gemma3");
  EXPECT_EQ(f->get_u32("clip.vision.image_size"), 224u);
  EXPECT_EQ(f->get_f32_array("clip.vision.image_mean"), (std::vector<float>{0.5f, 0.5f, 0.5f}));
  EXPECT_EQ(f->tensors().size(), 39u);
  EXPECT_EQ(f->tensor("v.patch_embd.weight").shape(), (Shape{32, 3, 14, 14}));
  EXPECT_EQ(f->tensor("v.patch_embd.weight").dtype(), DType::F32);
  EXPECT_EQ(f->tensor("v.position_embd.weight").shape(), (Shape{256, 32}));
  EXPECT_EQ(f->tensor("v.blk.0.ffn_up.weight").shape(), (Shape{64, 32}));
  EXPECT_EQ(f->tensor("v.blk.0.ffn_up.weight").dtype(), DType::F16);
  EXPECT_EQ(f->tensor("mm.input_projection.weight").dtype(), DType::F16);
  EXPECT_EQ(f->path(), test::reference_mmproj_path());
}

// Copying every key and tensor of llama.cpp's file through our writer gives the same bytes:
// same layout, alignment and padding.
TEST(Gguf, WriterReproducesLlamaCppFileExactly) {
  const auto f = test::reference_mmproj();
  GgufWriter w;
  for (const auto& [key, value] : f->metadata()) w.set(key, value);
  for (const GgufTensorInfo& t : f->tensors()) w.add(t.name, f->tensor(t));
  const std::string ours = w.serialize();
  const std::string theirs = read_file(test::reference_mmproj_path());
  EXPECT_EQ(ours.size(), theirs.size());
  EXPECT_TRUE(ours == theirs);
}

// --- writer round trip ------------------------------------------------------------------------

TEST(Gguf, RoundTripsEveryMetadataType) {
  GgufWriter w;
  w.set_u8("t.u8", 200);
  w.set_i8("t.i8", -100);
  w.set_u16("t.u16", 60000);
  w.set_i16("t.i16", -30000);
  w.set_u32("t.u32", 4000000000u);
  w.set_i32("t.i32", -2000000000);
  w.set_u64("t.u64", 18000000000000000000ull);
  w.set_i64("t.i64", -9000000000000000000ll);
  w.set_f32("t.f32", 1.5f);
  w.set_f64("t.f64", -2.25e300);
  w.set_bool("t.bool", true);
  w.set_string("t.string", std::string("a\0b", 3));
  w.set_string("t.empty", "");
  const std::vector<int32_t> ints = {1, -2, 3};
  w.set_array("t.ints", GgufWriter::Array::of(std::span<const int32_t>(ints)));
  const std::vector<float> floats = {0.5f, NAN};
  w.set_array("t.floats", GgufWriter::Array::of(std::span<const float>(floats)));
  const std::vector<std::string> strings = {"x", "", "yz"};
  w.set_array("t.strings", GgufWriter::Array::of(std::span<const std::string>(strings)));
  w.set_array("t.bools", GgufWriter::Array::of_bools({true, false, true}));
  w.set_array("t.none", GgufWriter::Array::of(std::span<const uint64_t>()));
  const std::vector<GgufWriter::Array> inner = {GgufWriter::Array::of(std::span<const int32_t>(ints)),
                                                GgufWriter::Array::of(std::span<const std::string>(strings))};
  w.set_array("t.nested", GgufWriter::Array::of(std::span<const GgufWriter::Array>(inner)));
  w.set_u32("t.u32", 7);  // setting again replaces in place
  const auto f = parse(w.serialize());

  ASSERT_EQ(f->metadata().size(), 19u);
  EXPECT_EQ(f->metadata()[4].first, "t.u32");
  EXPECT_EQ(f->get_u8("t.u8"), 200);
  EXPECT_EQ(f->get_i8("t.i8"), -100);
  EXPECT_EQ(f->get_u16("t.u16"), 60000);
  EXPECT_EQ(f->get_i16("t.i16"), -30000);
  EXPECT_EQ(f->get_u32("t.u32"), 7u);
  EXPECT_EQ(f->get_i32("t.i32"), -2000000000);
  EXPECT_EQ(f->get_u64("t.u64"), 18000000000000000000ull);
  EXPECT_EQ(f->get_i64("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(f->get_f32("t.f32"), 1.5f);
  EXPECT_EQ(f->get_f64("t.f64"), -2.25e300);
  EXPECT_EQ(f->get_bool("t.bool"), true);
  EXPECT_EQ(f->get_string("t.string"), std::string_view("a\0b", 3));
  EXPECT_EQ(f->get_string("t.empty"), "");
  EXPECT_EQ(f->get_i32_array("t.ints"), ints);
  const std::vector<float> fl = f->get_f32_array("t.floats");
  EXPECT_EQ(fl[0], 0.5f);
  EXPECT_TRUE(std::isnan(fl[1]));
  const auto s = f->get_string_array("t.strings");
  EXPECT_EQ(std::vector<std::string>(s.begin(), s.end()), strings);
  const GgufValue& b = f->get_array("t.bools", GgufType::BOOL);
  EXPECT_TRUE(b.bool_at(0) && !b.bool_at(1) && b.bool_at(2));
  EXPECT_EQ(f->get_array("t.none", GgufType::U64).size(), 0u);
  const GgufValue& n = f->get_array("t.nested", GgufType::ARRAY);
  ASSERT_EQ(n.arrays().size(), 2u);
  EXPECT_EQ(n.arrays()[0].int_at(1), -2);
  EXPECT_EQ(n.arrays()[1].strings()[2], "yz");
  // Lenient accessors and defaults.
  EXPECT_EQ(f->get_int("t.u16"), 60000);
  EXPECT_EQ(f->get_int("t.i8"), -100);
  EXPECT_EQ(f->get_float("t.f32"), 1.5);
  EXPECT_EQ(f->get_int_or("absent", 42), 42);
  EXPECT_EQ(f->get_string_or("absent", "d"), "d");
  EXPECT_EQ(f->get("t.u64").as_int(), std::nullopt);  // above INT64_MAX
  EXPECT_EQ(f->get("t.ints").to_string(), "[1, -2, 3]");
}

TEST(Gguf, AccessorErrorsNameKeyAndTypes) {
  GgufWriter w;
  w.set_u32("a.count", 3);
  w.set_string("a.name", "x");
  const auto f = parse(w.serialize());
  try {
    f->get_string("a.count");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("mem.gguf"), std::string::npos) << m;
    EXPECT_NE(m.find("'a.count'"), std::string::npos) << m;
    EXPECT_NE(m.find("must be string"), std::string::npos) << m;
    EXPECT_NE(m.find("it is u32"), std::string::npos) << m;
  }
  EXPECT_THROW(f->get_i32("a.count"), Error);  // exact types for the typed getters
  EXPECT_THROW(f->get_int("a.name"), Error);
  EXPECT_THROW(f->get_f32_array("a.count"), Error);
  EXPECT_THROW(f->get_int_or("a.name", 1), Error);  // present but wrong: not the default
  try {
    f->get_u32("a.missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing metadata key 'a.missing'"), std::string::npos) << e.what();
  }
  try {
    f->tensor("nope");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tensor named 'nope'"), std::string::npos) << e.what();
  }
}

TEST(Gguf, RoundTripsTensorsOfEveryType) {
  GgufWriter w;
  w.set_string("general.architecture", "test");
  const Tensor f32 = Tensor::from_f32(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  w.add("f32", f32);
  w.add("f16", f32.converted(DType::F16));
  w.add("bf16", f32.converted(DType::BF16));
  w.add("vec", Tensor::from_f32(std::vector<float>{7}, {1}));
  w.add("four_d", Tensor::zeros(DType::F32, {2, 1, 3, 2}));
  Tensor i32 = Tensor::zeros(DType::I32, {3});
  i32.data<int32_t>()[1] = -5;
  w.add("i32", i32);
  for (DType d : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const int64_t n = dtype_info(d).block_elems * 2;
    const std::string name = std::string(dtype_name(d));
    w.add_generated(name, d, {3, n}, [n, d](void* p) {
      auto* b = static_cast<uint8_t*>(p);
      for (int64_t i = 0; i < dtype_bytes(d, 3 * n); ++i) b[i] = uint8_t(i * 7 + 1);
    });
  }
  const std::string bytes = w.serialize();
  const auto f = GgufFile::open_buffer(bytes.data(), bytes.size(), "mem.gguf");  // `bytes` outlives it
  ASSERT_EQ(f->tensors().size(), 10u);
  EXPECT_EQ(f->tensor("f32").to_f32(), f32.to_f32());
  EXPECT_EQ(f->tensor("f16").to_f32(), f32.to_f32());
  EXPECT_EQ(f->tensor("bf16").to_f32(), f32.to_f32());
  EXPECT_EQ(f->tensor("bf16").dtype(), DType::BF16);
  EXPECT_EQ(f->tensor("four_d").shape(), (Shape{2, 1, 3, 2}));
  EXPECT_EQ(f->find_tensor("four_d")->ne, (std::vector<int64_t>{2, 3, 1, 2}));
  EXPECT_EQ(f->tensor("i32").data<const int32_t>()[1], -5);
  for (DType d : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q6_K}) {
    const Tensor t = f->tensor(std::string(dtype_name(d)));
    EXPECT_EQ(t.dtype(), d);
    EXPECT_EQ(t.shape(), (Shape{3, dtype_info(d).block_elems * 2}));
    const auto* b = t.data<const uint8_t>();
    for (int64_t i = 0; i < t.nbytes(); ++i) ASSERT_EQ(b[i], uint8_t(i * 7 + 1)) << dtype_name(d);
  }
  for (const GgufTensorInfo& t : f->tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  // Zero-copy: the view points into the buffer.
  const auto* base = reinterpret_cast<const uint8_t*>(bytes.data());
  EXPECT_EQ(f->tensor("f32").data<const uint8_t>(), base + f->data_offset() + f->find_tensor("f32")->offset);

  // The same through a file, streamed, with a larger alignment.
  w.set_alignment(64);
  const std::string path = test::scratch_dir("gguf-roundtrip") + "/t.gguf";
  w.write(path);
  const auto g = GgufFile::open(path);
  EXPECT_EQ(g->alignment(), 64u);
  EXPECT_EQ(g->get_u32("general.alignment"), 64u);
  EXPECT_EQ(g->data_offset() % 64, 0u);
  for (const GgufTensorInfo& t : g->tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  EXPECT_EQ(g->tensor("bf16").to_f32(), f32.to_f32());
}

TEST(Gguf, WriterRefusesWhatGgufCannotHold) {
  GgufWriter w;
  EXPECT_THROW(w.add("u8", Tensor::zeros(DType::U8, {4})), Error);
  EXPECT_THROW(w.add("nf4", Tensor::zeros(DType::NF4, {64})), Error);
  EXPECT_THROW(w.add("five", Tensor::zeros(DType::F32, {1, 1, 1, 1, 2})), Error);
  EXPECT_THROW(w.add_generated("q", DType::Q4_0, {2, 16}, nullptr), Error);  // rows not whole blocks
  w.add("x", Tensor::zeros(DType::F32, {2}));
  EXPECT_THROW(w.add("x", Tensor::zeros(DType::F32, {2})), Error);
  EXPECT_THROW(w.set_alignment(48), Error);
  EXPECT_THROW(w.set_string("general.alignment", "32"), Error);
}

// --- malformed input: every one a clear Error -----------------------------------------------

TEST(GgufErrors, BadMagicAndVersion) {
  expect_error("", {"bad magic", "an empty file"});
  expect_error("GGML\x03\0\0\0", {"bad magic", "47 47 4d 4c"});
  expect_error(Bytes().header(0, 0, 1).s, {"version 1 is not supported"});
  expect_error(Bytes().header(0, 0, 4).s, {"unsupported GGUF version 4"});
  expect_error(Bytes().header(0, 0, 0x03000000).s, {"big-endian"});
  EXPECT_NO_THROW(parse(Bytes().header(0, 0, 2).s));  // version 2: same layout
  EXPECT_NO_THROW(parse(Bytes().header(0, 0, 3).s));
}

TEST(GgufErrors, AbsurdCounts) {
  expect_error(Bytes().header(0, 1000).s, {"metadata count 1000 is absurd"});
  expect_error(Bytes().header(uint64_t(1) << 60, 0).s, {"tensor count", "is absurd"});
  expect_error(Bytes().header(0, 1).str("k").u32(8).u64(~uint64_t(0)).s, {"'k'", "length", "remain"});
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(6).u64(uint64_t(1) << 40).s,
               {"'k'", "array of 1099511627776 f32 values", "cannot fit"});
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(1000).u64(0).s, {"'k'", "1000 string values"});
  expect_error(Bytes().header(0, 1).u64(uint64_t(1) << 62).raw(std::string(16, 'x')).s, {"metadata key 0", "length"});
}

TEST(GgufErrors, BadMetadata) {
  expect_error(Bytes().header(0, 1).str("k").u32(13).u32(0).s, {"'k'", "unknown type 13"});
  expect_error(Bytes().header(0, 1).str("k").u32(9).u32(77).u64(0).s, {"'k'", "array of unknown type 77"});
  expect_error(Bytes().header(0, 1).str("k").u32(7).raw("\x02").s, {"'k'", "bool of value 2"});
  expect_error(Bytes().header(0, 1).str("").u32(4).u32(0).s, {"key 0 is empty"});
  expect_error(Bytes().header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).s, {"'k' appears twice"});
  // Arrays nested beyond the limit (each level: element type ARRAY, one element).
  Bytes deep = Bytes().header(0, 1).str("k").u32(9);
  for (int i = 0; i < 20; ++i) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  expect_error(deep.s, {"'k'", "nests arrays more than"});
  expect_error(Bytes().header(0, 1).str("general.alignment").u32(8).str("32").s,
               {"'general.alignment' must be a u32"});
  expect_error(Bytes().header(0, 1).str("general.alignment").u32(4).u32(24).s, {"alignment 24 is not a power of two"});
  expect_error(Bytes().header(0, 1).str("general.alignment").u32(4).u32(0).s, {"not a power of two"});
}

TEST(GgufErrors, BadTensorInfos) {
  auto one = [](std::vector<uint64_t> ne, uint32_t type, uint64_t offset, uint64_t data) {
    return Bytes().header(1, 0).tensor("w", std::move(ne), type, offset).data(data).s;
  };
  EXPECT_NO_THROW(parse(one({4, 2}, kF32, 0, 32)));
  expect_error(one({}, kF32, 0, 32), {"'w'", "0 dimensions"});
  expect_error(one({1, 1, 1, 1, 1}, kF32, 0, 32), {"'w'", "5 dimensions"});
  expect_error(one({4, 0}, kF32, 0, 32), {"'w'", "dimension of size 0"});
  expect_error(one({uint64_t(1) << 40, uint64_t(1) << 40}, kF32, 0, 32), {"'w'", "overflow"});
  expect_error(one({uint64_t(1) << 62, 2}, kF16, 0, 32), {"'w'", "overflow"});
  expect_error(one({4}, 4, 0, 32), {"'w'", "unknown ggml type id 4"});
  expect_error(one({4}, 99, 0, 32), {"'w'", "unknown ggml type id 99"});
  expect_error(one({16, 2}, kQ4_0, 0, 64), {"'w'", "rows of 16 values", "Q4_0 blocks"});
  expect_error(one({4}, kF32, 8, 64), {"'w'", "offset 8", "alignment 32"});
  expect_error(one({4, 2}, kF32, 0, 31), {"'w'", "extends past the end"});
  expect_error(one({4}, kF32, 64, 32), {"'w'", "extends past the end"});
  expect_error(one({4}, kF32, uint64_t(1) << 63, 32), {"'w'", "extends past the end"});
  expect_error(Bytes().header(1, 0).str("").u32(1).u64(4).u32(kF32).u64(0).data(16).s, {"tensor 0 has an empty name"});
  expect_error(Bytes().header(2, 0).tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32).data(64).s,
               {"'w' appears twice"});
  expect_error(Bytes().header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).data(96).s,
               {"'a' [0, 64)", "'b' [32, 64)", "overlap"});
  // The data section itself must start inside the file.
  expect_error(Bytes().header(1, 0).tensor("w", {8}, kF32, 0).s, {"data section would start"});
}

TEST(GgufErrors, UnsupportedTypeIsRefusedWhenUsed) {
  const std::string bytes = Bytes().header(1, 0).tensor("blk.0.ffn_down.weight", {256, 2}, kIQ2_XS, 0).data(148).s;
  const auto f = parse(bytes);  // the file itself is valid: its layout checks out
  EXPECT_EQ(f->find_tensor("blk.0.ffn_down.weight")->bytes, 148u);
  try {
    f->tensor("blk.0.ffn_down.weight");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("'blk.0.ffn_down.weight'"), std::string::npos) << m;
    EXPECT_NE(m.find("unsupported type IQ2_XS (ggml type id 17)"), std::string::npos) << m;
  }
}

// Every prefix of a valid file that cuts into the header or the tensor data is an Error (and
// never a read past the end: the sanitizer build checks).
TEST(GgufErrors, TruncatedAnywhere) {
  GgufWriter w;
  w.set_string("general.architecture", "test");
  w.set_u32("n", 3);
  const std::vector<std::string> strings = {"ab", "c"};
  w.set_array("s", GgufWriter::Array::of(std::span<const std::string>(strings)));
  w.add("a", Tensor::from_f32(std::vector<float>{1, 2, 3}, {3}));
  w.add("b", Tensor::from_f32(std::vector<float>{4, 5}, {1, 2}));
  const std::string full = w.serialize();
  const auto f = parse(full);
  const GgufTensorInfo* b = f->find_tensor("b");
  const size_t data_end = size_t(f->data_offset() + b->offset + b->bytes);
  for (size_t n = 0; n < data_end; ++n) {
    const std::string cut = full.substr(0, n);
    EXPECT_THROW(GgufFile::open_buffer(cut.data(), cut.size(), "cut.gguf"), Error) << n << " bytes";
  }
  // The padding after the last tensor is not needed.
  EXPECT_NO_THROW(parse(full.substr(0, data_end)));
}

TEST(GgufErrors, FileErrorsNameThePath) {
  const std::string dir = test::scratch_dir("gguf-errors");
  test::write_bytes(dir + "/short.gguf", "GGUF\x03\0\0\0");
  try {
    GgufFile::open(dir + "/short.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/short.gguf: truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GgufFile::open(dir + "/missing.gguf"), Error);
}

}  // namespace
}  // namespace unicorn
