#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "support/test_paths.h"

namespace unicorn {
namespace {

// A safetensors file from a raw header and data section.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(char((n >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string write_tmp(const std::string& name, const std::string& bytes) {
  const std::string path = test::scratch_dir("safetensors") + "/" + name;
  test::write_bytes(path, bytes);
  return path;
}

// Expects opening `bytes` to fail with a message holding every one of `parts`.
void expect_open_error(const std::string& bytes, std::initializer_list<std::string> parts) {
  const std::string path = write_tmp("bad.safetensors", bytes);
  try {
    SafetensorsFile::open(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
  }
}

TEST(Safetensors, RoundTripAllElementTypes) {
  SafetensorsWriter w;
  Tensor f32 = Tensor::from_f32(std::vector<float>{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f}, {2, 3});
  w.add("a.f32", f32);
  w.add("b.bf16", f32.converted(DType::BF16));
  w.add("c.f16", f32.converted(DType::F16));
  Tensor ids = Tensor::zeros(DType::I64, {3});
  ids.data<int64_t>()[0] = 2;
  ids.data<int64_t>()[2] = -7;
  w.add("d.i64", ids);
  Tensor bytes = Tensor::zeros(DType::U8, {4});
  bytes.data<uint8_t>()[3] = 200;
  w.add("e.u8", bytes);
  w.set_metadata("format", "pt");
  const std::string path = test::scratch_dir("st-roundtrip") + "/x.safetensors";
  w.write(path);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->entries().size(), 5u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->tensor("a.f32").to_f32(), f32.to_f32());
  EXPECT_EQ(f->tensor("b.bf16").dtype(), DType::BF16);
  EXPECT_EQ(f->tensor("b.bf16").to_f32(), f32.to_f32());  // all values exact in bf16
  EXPECT_EQ(f->tensor("c.f16").to_f32(), f32.to_f32());
  EXPECT_EQ(f->tensor("d.i64").data<int64_t>()[2], -7);
  EXPECT_EQ(f->tensor("e.u8").data<uint8_t>()[3], 200);
  EXPECT_EQ(f->tensor("a.f32").shape(), (Shape{2, 3}));
  // Zero-copy: the view points into the mapping.
  EXPECT_EQ(f->tensor("a.f32").raw(), f->tensor("a.f32").raw());
  EXPECT_THROW(f->tensor("missing"), Error);
}

TEST(Safetensors, ReadsReferenceCheckpoint) {
  auto set = SafetensorsSet::open(test::data_path("models/tiny-text"));
  const Tensor emb = set.tensor("model.embed_tokens.weight");
  EXPECT_EQ(emb.dtype(), DType::BF16);
  EXPECT_EQ(emb.shape(), (Shape{1024, 64}));
}

TEST(Safetensors, ShardedIndex) {
  auto set = SafetensorsSet::open(test::data_path("models/tiny-mm-896"));
  EXPECT_EQ(set.files().size(), 2u);
  EXPECT_NE(set.find("model.language_model.embed_tokens.weight"), nullptr);
  EXPECT_NE(set.find("model.vision_tower.post_layernorm.weight"), nullptr);
}

TEST(Safetensors, ShardMissingFromFolder) {
  namespace fs = std::filesystem;
  const std::string dir = test::scratch_dir("st-missing-shard");
  const std::string src = test::data_path("models/tiny-mm-896");
  fs::copy_file(src + "/model.safetensors.index.json", dir + "/model.safetensors.index.json");
  fs::copy_file(src + "/model-00001-of-00002.safetensors", dir + "/model-00001-of-00002.safetensors");
  try {
    SafetensorsSet::open(dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, IndexNamesTensorAbsentFromShard) {
  namespace fs = std::filesystem;
  const std::string dir = test::scratch_dir("st-index-lies");
  const std::string src = test::data_path("models/tiny-mm-896");
  fs::copy_file(src + "/model-00001-of-00002.safetensors", dir + "/model-00001-of-00002.safetensors");
  test::write_bytes(dir + "/model.safetensors.index.json",
                    R"({"weight_map": {"not.there": "model-00001-of-00002.safetensors"}})");
  EXPECT_THROW(SafetensorsSet::open(dir), Error);
}

TEST(Safetensors, NoWeightsInFolder) {
  const std::string dir = test::scratch_dir("st-empty");
  EXPECT_THROW(SafetensorsSet::open(dir), Error);
  EXPECT_THROW(SafetensorsSet::open(dir + "/nope"), Error);
}

TEST(Safetensors, TooShort) { expect_open_error("abc", {"too short"}); }

TEST(Safetensors, HeaderBeyondFile) {
  std::string bytes = make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "1234");
  expect_open_error(bytes.substr(0, 20), {"header length", "beyond"});
}

TEST(Safetensors, AbsurdHeaderLength) {
  std::string bytes(16, '\xff');
  expect_open_error(bytes, {"absurd"});
}

TEST(Safetensors, BadJson) { expect_open_error(make_file("{not json", ""), {"not valid JSON"}); }

TEST(Safetensors, HeaderNotObject) { expect_open_error(make_file("[1,2]", ""), {"JSON object"}); }

TEST(Safetensors, OffsetsOutsideData) {
  expect_open_error(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"),
                    {"'w'", "outside the data section"});
}

TEST(Safetensors, ShapeDoesNotMatchBytes) {
  expect_open_error(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "12345678"),
                    {"'w'", "needs 12 bytes"});
}

TEST(Safetensors, OverlappingTensors) {
  expect_open_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              "123456789012"),
                    {"overlap", "'a'", "'b'"});
}

TEST(Safetensors, UnknownDtype) {
  expect_open_error(make_file(R"({"w":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}})", "1"),
                    {"'w'", "unknown dtype 'F8_E9'"});
}

TEST(Safetensors, DuplicateNames) {
  expect_open_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                              R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                              "12"),
                    {"'w'", "twice"});
}

TEST(Safetensors, ReversedOffsetsAndBadTypes) {
  expect_open_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", "12"), {"reversed"});
  expect_open_error(make_file(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "1"),
                    {"non-negative"});
  expect_open_error(make_file(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", "1"), {"two integers"});
  expect_open_error(make_file(R"({"w":7})", ""), {"must be an object"});
}

TEST(Safetensors, ShapeOverflow) {
  expect_open_error(
      make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})", "1234"),
      {"overflow"});
}

TEST(Safetensors, TruncatedReferenceFile) {
  const std::string full = read_file(test::data_path("models/tiny-text/model.safetensors"));
  expect_open_error(full.substr(0, full.size() / 2), {"outside the data section"});
}

// The same parser on bytes in memory (what the fuzz target uses): views into the buffer,
// errors naming the given name.
// Files may place a bf16 tensor at an odd offset (after an odd-sized uint8 one, as some
// bitsandbytes checkpoints do): it reads right (copied; the sanitizer pass checks alignment).
TEST(Safetensors, MisalignedTensorsReadRight) {
  const std::string header =
      R"({"codes":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
      R"("w":{"dtype":"BF16","shape":[2],"data_offsets":[3,7]}})";
  std::string data = {char(1), char(2), char(3)};
  for (uint16_t v : {f32_to_bf16(1.5f), f32_to_bf16(-2.0f)}) data += std::string{char(v & 0xff), char(v >> 8)};
  auto f = SafetensorsFile::open(write_tmp("odd.safetensors", make_file(header, data)));
  EXPECT_EQ(f->tensor("w").to_f32(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->tensor("w").raw()) % 2, 0u);
}

// The writer puts wider elements first, so it never writes such a file itself.
TEST(Safetensors, WriterAlignsEveryTensor) {
  SafetensorsWriter w;
  w.add("codes", Tensor::zeros(DType::U8, {3}));
  w.add("w", Tensor::from_f32(std::vector<float>{1, 2}, {2}).converted(DType::BF16));
  w.add("big", Tensor::from_f32(std::vector<float>{3}, {1}));
  const std::string bytes = w.serialize();
  auto f = SafetensorsFile::open_buffer(bytes.data(), bytes.size(), "aligned");
  for (const char* name : {"codes", "w", "big"}) {
    const SafetensorsEntry* e = f->find(name);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->begin % uint64_t(dtype_info(e->dtype).block_bytes), 0u) << name;
  }
  EXPECT_EQ(f->tensor("w").to_f32(), (std::vector<float>{1, 2}));
}

TEST(Safetensors, OpenBuffer) {
  SafetensorsWriter w;
  w.add("x", Tensor::from_f32(std::vector<float>{1, 2, 3}, {3}));
  const auto bytes = std::make_shared<const std::string>(w.serialize());
  auto f = SafetensorsFile::open_buffer(bytes->data(), bytes->size(), "in-memory", bytes);
  EXPECT_EQ(f->path(), "in-memory");
  const Tensor x = f->tensor("x");
  f.reset();  // the tensor keeps the buffer alive
  EXPECT_EQ(x.to_f32(), (std::vector<float>{1, 2, 3}));
  EXPECT_GE(x.data<const char>(), bytes->data());
  EXPECT_LT(x.data<const char>(), bytes->data() + bytes->size());
  try {
    SafetensorsFile::open_buffer(bytes->data(), 5, "short buffer");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("short buffer: not a safetensors file"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace unicorn
