#include "support/server_test_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <sstream>

namespace unicorn::test {

namespace {

HttpReply reply_of(const httplib::Result& r, std::chrono::steady_clock::time_point t0) {
  HttpReply out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.json = nlohmann::json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (out.json.is_discarded()) out.json = nullptr;
  return out;
}

httplib::Headers auth(const std::string& api_key) {
  httplib::Headers h;
  if (!api_key.empty()) h.emplace("Authorization", "Bearer " + api_key);
  return h;
}

}  // namespace

HttpReply post(int port, const std::string& path, const std::string& body, const std::string& api_key) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(120);
  const auto t0 = std::chrono::steady_clock::now();
  return reply_of(cli.Post(path.c_str(), auth(api_key), body, "application/json"), t0);
}

HttpReply get(int port, const std::string& path, const std::string& api_key) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(120);
  const auto t0 = std::chrono::steady_clock::now();
  return reply_of(cli.Get(path.c_str(), auth(api_key)), t0);
}

HttpReply chat(int port, const nlohmann::json& messages, const nlohmann::json& extra, const std::string& api_key) {
  nlohmann::json body = extra;
  if (!body.contains("model")) body["model"] = "demo";
  body["messages"] = messages;
  return post(port, "/v1/chat/completions", body.dump(), api_key);
}

nlohmann::json user_says(const std::string& text) {
  return nlohmann::json::array({{{"role", "user"}, {"content", text}}});
}

nlohmann::json image_message(const std::string& url, const std::string& question) {
  return {{"role", "user"},
          {"content", nlohmann::json::array({{{"type", "image_url"}, {"image_url", {{"url", url}}}},
                                             {{"type", "text"}, {"text", question}}})}};
}

std::string data_uri(const std::string& bytes, const std::string& type) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out = "data:" + type + ";base64,";
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string post_and_hang_up(int port, const std::string& path, const std::string& body, const std::string& until,
                             int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::ostringstream req;
    req << "POST " << path << " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: "
        << body.size() << "\r\n\r\n"
        << body;
    const std::string r = req.str();
    size_t sent = 0;
    while (sent < r.size()) {
      const ssize_t n = send(fd, r.data() + sent, r.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += size_t(n);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (got.find(until) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[4096];
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      got.append(buf, size_t(n));
    }
  }
  close(fd);
  return got;
}

double metric_value(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  return -1;
}

}  // namespace unicorn::test
