// Gemma 3's chat prompt: the conversation -> prompt text, exactly as the Jinja chat template
// of tokenizer_config.json renders it (ref: google/gemma-3-*-it tokenizer_config.json
// "chat_template"), OpenAI-style JSON messages -> conversation, and the image placeholder
// expansion of Gemma3Processor (ref: transformers processing_gemma3.py), which works on the
// rendered TEXT before tokenizing, because "\n\n" around images merges with the newlines next
// to them ("user\n" + "\n\n<start_of_image>" tokenizes as "user", "\n\n\n", ...).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace unicorn::gemma3 {

struct ChatPart {
  enum Kind { Text, Image };
  Kind kind = Text;
  // Text: the text. Image: where the image comes from when the message said so (an
  // image_url's url, or an "image" part's "url"/"image"/"path" string), else empty; the
  // image data itself is fetched and decoded elsewhere.
  std::string text;

  static ChatPart text_part(std::string t) { return {Text, std::move(t)}; }
  static ChatPart image_part(std::string source = {}) { return {Image, std::move(source)}; }
};

struct ChatMessage {
  std::string role;  // "system" (first message only), "user", "assistant" (or "model")
  std::vector<ChatPart> parts;

  ChatMessage() = default;
  ChatMessage(std::string r, std::vector<ChatPart> p) : role(std::move(r)), parts(std::move(p)) {}
  // Content given as a plain string: one text part.
  ChatMessage(std::string r, std::string content) : role(std::move(r)), parts{ChatPart::text_part(std::move(content))} {}
};

// The prompt text, starting with "<bos>" (tokenize it without adding another). A first
// system message is folded into the first user turn, followed by "\n\n" (untrimmed, as the
// template does); other text is trimmed of whitespace (Jinja's `| trim`, Python's
// str.strip()); images render as "<start_of_image>"; "assistant" turns are "model" turns.
// Errors: no messages; roles that do not alternate user/assistant/... (the template's own
// message: "Conversation roles must alternate user/assistant/user/assistant/..."); unknown
// roles; a system message that is not first or is not one text part; invalid UTF-8.
std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// Messages in the OpenAI chat format: [{"role": ..., "content": "text" | [parts]}], with
// parts {"type": "text", "text": ...}, {"type": "image"} (HF style) and
// {"type": "image_url", "image_url": {"url": ...}} (OpenAI style). Errors name the message
// and part that has a wrong type or an unknown part type.
std::vector<ChatMessage> parse_messages(const nlohmann::json& messages);

// Number of image parts, in prompt order.
size_t count_images(const std::vector<ChatMessage>& messages);

// The token strings of the processor (Gemma 3: the defaults).
struct ImageTokenStrings {
  std::string begin = "<start_of_image>";   // boi_token
  std::string end = "<end_of_image>";       // eoi_token
  std::string image = "<image_soft_token>"; // image_token, one per image embedding
};

// Expands each `begin` marker of a rendered prompt into "\n\n" + begin + tokens_per_image x
// image + end + "\n\n" (mm_tokens_per_image: 256 for the real models). With pan-and-scan,
// image i split into crops_per_image[i] > 0 crops is first rewritten as "Here is the original
// image <marker> and here are some crops to help you see better <marker> <marker> ...", one
// marker per crop, and those expand in turn. crops_per_image has one entry per image (0 for
// no crops); a marker count that differs from it is an Error.
std::string expand_image_tokens(const std::string& rendered, std::span<const int> crops_per_image,
                                const ImageTokenStrings& tokens, int64_t tokens_per_image);

}  // namespace unicorn::gemma3
