#include "models/gemma3/chat_format.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace unicorn::gemma3 {

namespace {

using json = nlohmann::json;

constexpr const char* kAlternate = "Conversation roles must alternate user/assistant/user/assistant/...";

// Python's str.isspace(), which Jinja's trim filter (str.strip()) uses: ASCII whitespace,
// the separators U+001C..U+001F, NEL, NBSP and the Unicode space separators.
bool is_python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// `s` must be valid UTF-8.
std::string trim(std::string_view s) {
  size_t begin = 0;
  while (begin < s.size()) {
    uint32_t cp = 0;
    const size_t len = utf8::decode_one(s, begin, cp);
    if (!is_python_space(cp)) break;
    begin += len;
  }
  size_t end = s.size();
  while (end > begin) {
    size_t start = end - 1;
    while (start > begin && (uint8_t(s[start]) & 0xC0) == 0x80) --start;  // back to a lead byte
    uint32_t cp = 0;
    utf8::decode_one(s, start, cp);
    if (!is_python_space(cp)) break;
    end = start;
  }
  return std::string(s.substr(begin, end - begin));
}

}  // namespace

std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  if (messages.empty()) fail("chat: no messages (expected at least one user message)");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant" && role != "model")
      fail("chat: message {} has role '{}'; expected system, user or assistant", i, role);
    if (role == "system" && i != 0) fail("chat: message {} is a system message; only the first message may be one", i);
    for (size_t k = 0; k < messages[i].parts.size(); ++k)
      utf8::require_valid(messages[i].parts[k].text, fmt::format("chat: message {} part {}", i, k));
  }

  std::string out = "<bos>";
  std::string first_user_prefix;
  size_t first = 0;
  if (messages[0].role == "system") {
    // The template takes the system text as is (no trim) and, for a list content, only the
    // first part; anything else it would drop silently, so refuse it instead.
    const auto& parts = messages[0].parts;
    if (parts.size() != 1 || parts[0].kind != ChatPart::Text)
      fail("chat: the system message must be one text part (it has {} parts{})", parts.size(),
           !parts.empty() && parts[0].kind == ChatPart::Image ? ", starting with an image" : "");
    first_user_prefix = parts[0].text + "\n\n";
    first = 1;
  }
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const size_t index0 = i - first;
    if ((m.role == "user") != (index0 % 2 == 0)) fail("chat: {}", kAlternate);
    const std::string role = m.role == "assistant" ? "model" : m.role;
    out += "<start_of_turn>" + role + "\n";
    if (index0 == 0) out += first_user_prefix;
    for (const ChatPart& p : m.parts) out += p.kind == ChatPart::Image ? std::string("<start_of_image>") : trim(p.text);
    out += "<end_of_turn>\n";
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

std::vector<ChatMessage> parse_messages(const json& messages) {
  if (!messages.is_array()) fail("messages: expected an array of {{\"role\", \"content\"}} objects, got {}", messages.type_name());
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    if (!m.is_object()) fail("messages[{}]: expected an object with 'role' and 'content', got {}", i, m.type_name());
    if (!m.contains("role") || !m["role"].is_string()) fail("messages[{}]: 'role' must be a string", i);
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    const json* content = m.contains("content") ? &m["content"] : nullptr;
    if (!content || (!content->is_string() && !content->is_array()))
      fail("messages[{}]: 'content' must be a string or an array of parts, got {}", i, content ? content->type_name() : "nothing");
    if (content->is_string()) {
      msg.parts.push_back(ChatPart::text_part(content->get<std::string>()));
    } else {
      for (size_t k = 0; k < content->size(); ++k) {
        const json& p = (*content)[k];
        const std::string where = fmt::format("messages[{}].content[{}]", i, k);
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string())
          fail("{}: expected an object with a string 'type', got {}", where, p.dump());
        const std::string type = p["type"].get<std::string>();
        if (type == "text") {
          if (!p.contains("text") || !p["text"].is_string()) fail("{}: a text part needs a string 'text'", where);
          msg.parts.push_back(ChatPart::text_part(p["text"].get<std::string>()));
        } else if (type == "image_url") {
          // OpenAI: {"image_url": {"url": "..."}}; some clients send the url string directly.
          const json* u = p.contains("image_url") ? &p["image_url"] : nullptr;
          if (u && u->is_object() && u->contains("url") && (*u)["url"].is_string()) {
            msg.parts.push_back(ChatPart::image_part((*u)["url"].get<std::string>()));
          } else if (u && u->is_string()) {
            msg.parts.push_back(ChatPart::image_part(u->get<std::string>()));
          } else {
            fail("{}: an image_url part needs \"image_url\": {{\"url\": \"...\"}}", where);
          }
        } else if (type == "image") {
          std::string source;
          for (const char* key : {"url", "image", "path"})
            if (p.contains(key) && p[key].is_string()) source = p[key].get<std::string>();
          msg.parts.push_back(ChatPart::image_part(std::move(source)));
        } else {
          fail("{}: unknown part type '{}' (expected text, image or image_url)", where, type);
        }
      }
    }
    out.push_back(std::move(msg));
  }
  return out;
}

size_t count_images(const std::vector<ChatMessage>& messages) {
  size_t n = 0;
  for (const auto& m : messages)
    for (const auto& p : m.parts) n += p.kind == ChatPart::Image;
  return n;
}

std::string expand_image_tokens(const std::string& rendered, std::span<const int> crops_per_image,
                                const ImageTokenStrings& tokens, int64_t tokens_per_image) {
  if (tokens.begin.empty()) fail("image expansion: the begin-of-image token string is empty");
  if (tokens_per_image <= 0) fail("image expansion: tokens per image must be positive, got {}", tokens_per_image);
  size_t markers = 0;
  for (size_t p = rendered.find(tokens.begin); p != std::string::npos; p = rendered.find(tokens.begin, p + tokens.begin.size()))
    ++markers;
  if (markers != crops_per_image.size())
    fail("image expansion: the prompt has {} image markers '{}' but {} images were given", markers, tokens.begin,
         crops_per_image.size());

  std::string full = "\n\n" + tokens.begin;
  full.reserve(full.size() + size_t(tokens_per_image) * tokens.image.size() + tokens.end.size() + 2);
  for (int64_t i = 0; i < tokens_per_image; ++i) full += tokens.image;
  full += tokens.end + "\n\n";

  std::string out;
  size_t last = 0, image = 0;
  for (size_t p = rendered.find(tokens.begin); p != std::string::npos; p = rendered.find(tokens.begin, last), ++image) {
    out.append(rendered, last, p - last);
    last = p + tokens.begin.size();
    const int crops = crops_per_image[image];
    if (crops < 0) fail("image expansion: image {} has {} crops; expected 0 or more", image, crops);
    if (crops == 0) {
      out += full;
      continue;
    }
    // ref: Gemma3Processor.__call__ (pan-and-scan): the original, then the crops.
    out += "Here is the original image " + full + " and here are some crops to help you see better ";
    for (int c = 0; c < crops; ++c) out += (c ? " " : "") + full;
  }
  out.append(rendered, last, std::string::npos);
  return out;
}

}  // namespace unicorn::gemma3
