// GGUF test data (tests/data/gguf/README.md): llama.cpp's q4_0 text GGUF of tiny-mm-realvocab
// (stored gzipped), its mmproj, and a GGUF of tests/data/models/tiny-text written here the way
// llama.cpp's converter writes Gemma 3 (for end-to-end checks against its HF logits).
#pragma once

#include <memory>
#include <string>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"

namespace unicorn::test {

// llama.cpp's tiny-mm-realvocab-q4_0.gguf, decompressed once per test process, in memory
// and as a file.
std::shared_ptr<const GgufFile> reference_text_gguf();
const std::string& reference_text_gguf_path();
// llama.cpp's mmproj-tiny-mm-realvocab-f16.gguf.
std::string reference_mmproj_path();
std::shared_ptr<const GgufFile> reference_mmproj();

// tests/data/models/tiny-text (Gemma3ForCausalLM, bf16) as a gemma3 GGUF: llama.cpp's
// metadata keys and tensor names, norms as F32 with 1 added, matrices kept in BF16, no
// vocabulary. Tests may change the writer before writing it (for error cases).
GgufWriter tiny_text_gguf_writer();
// The unedited file, written once per test process.
const std::string& tiny_text_gguf_path();

}  // namespace unicorn::test
