#include "server/prompt_builder.h"

#include "server/api_error.h"
#include "vision/preprocess.h"

namespace unicorn::server {

namespace {
const Tokenizer& need_tokenizer(const Engine& engine) {
  if (!engine.tokenizer()) fail("the model folder has no tokenizer.json (or tokenizer.json.gz): cannot serve it");
  return *engine.tokenizer();
}
}  // namespace

PromptBuilder::PromptBuilder(const Engine& engine, PromptOptions options)
    : engine_(engine), tokenizer_(need_tokenizer(engine)), options_(std::move(options)) {}

void PromptBuilder::check_length(size_t tokens, const char* param) const {
  const int64_t ctx = engine_.options().context;
  if (int64_t(tokens) + 1 > ctx)
    throw ApiError(400,
                   fmt::format("the prompt has {} tokens but the context holds {} tokens (the prompt plus at least "
                               "one generated token must fit); shorten the conversation or start the server with a "
                               "larger --ctx",
                               tokens, ctx),
                   param, "context_length_exceeded");
}

RequestImage PromptBuilder::load_image(const std::string& url, const std::string& where, int& crops) const {
  const std::string bytes = image_bytes(url, options_.images, where);
  const auto span = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  vision::PreprocessOptions po;
  po.image_size = engine_.config().vision->image_size;
  po.pan_and_scan = options_.pan_and_scan;
  po.limits.max_pixels = options_.max_image_pixels;
  po.alloc = engine_.pixel_buffer();
  RequestImage im;
  try {
    vision::PreprocessedImage p = vision::preprocess_image(span, po, where);
    im.pixel_values = std::move(p.pixel_values);
    crops = int(p.num_crops);
  } catch (const Error& e) {
    throw ApiError(400, e.what(), where, "invalid_image");
  }
  // The features depend on the bytes and on the preprocessing: pan-and-scan makes crops.
  im.hash = content_hash(span, options_.pan_and_scan ? 0x70616e5363616eull : 0);
  return im;
}

void PromptBuilder::chat(const std::vector<gemma3::ChatMessage>& messages, GenerationRequest& request) const {
  const auto& c = engine_.config();
  const size_t n_images = gemma3::count_images(messages);
  if (n_images > 0 && !c.multimodal())
    fail_request("messages", "this model ({}) is text-only: it cannot take images", c.architecture);
  // Each image needs at least its tokens: refuse a request that cannot fit before decoding any.
  if (n_images > 0) check_length(n_images * size_t(c.mm_tokens_per_image + 2), "messages");

  // The template's checks first (roles, alternation): cheap, and before any image work.
  std::string rendered;
  try {
    rendered = gemma3::render_chat(messages, /*add_generation_prompt=*/true);
  } catch (const Error& e) {
    fail_request("messages", "{}", e.what());
  }
  std::vector<int> crops;
  for (size_t i = 0; i < messages.size(); ++i) {
    for (size_t k = 0; k < messages[i].parts.size(); ++k) {
      const gemma3::ChatPart& part = messages[i].parts[k];
      if (part.kind != gemma3::ChatPart::Image) continue;
      int n = 0;
      request.images.push_back(load_image(part.text, fmt::format("messages[{}].content[{}]", i, k), n));
      crops.push_back(n);
    }
  }
  try {
    // Expanding also checks that the markers are the images: a text part that spells
    // "<start_of_image>" would otherwise show the model an image that is not there.
    const std::string text =
        c.multimodal() ? gemma3::expand_image_tokens(rendered, crops, {}, c.mm_tokens_per_image) : rendered;
    request.prompt = tokenizer_.encode(text, /*add_bos=*/false);  // the rendering starts with <bos>
  } catch (const Error& e) {
    fail_request("messages", "{}", e.what());
  }
  check_length(request.prompt.size(), "messages");
}

void PromptBuilder::text(const std::string& prompt, GenerationRequest& request) const {
  try {
    request.prompt = tokenizer_.encode(prompt, /*add_bos=*/true);
  } catch (const Error& e) {
    fail_request("prompt", "{}", e.what());
  }
  // A prompt that starts with "<bos>" itself would get two.
  if (request.prompt.size() >= 2 && request.prompt[0] == tokenizer_.bos_id() && request.prompt[1] == tokenizer_.bos_id())
    request.prompt.erase(request.prompt.begin());
  check_length(request.prompt.size(), "prompt");
}

void PromptBuilder::ids(const std::vector<int32_t>& ids, GenerationRequest& request) const {
  const auto& c = engine_.config();
  for (int32_t t : ids)
    if (t < 0 || t >= c.text.vocab_size || (c.multimodal() && t == int32_t(c.image_token_index)))
      fail_request("prompt", "token id {} is outside the vocabulary (0..{}) or is an image token", t,
                   c.text.vocab_size - 1);
  request.prompt = ids;
  check_length(request.prompt.size(), "prompt");
}

}  // namespace unicorn::server
