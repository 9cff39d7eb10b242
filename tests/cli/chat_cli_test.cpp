// `unicorn chat` end to end with the bundled demo model: a piped script (no terminal), and a
// real terminal through tmux for readline's editing and history and for Ctrl-C at the prompt
// and during an answer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "support/test_paths.h"

namespace unicorn {
namespace {

size_t count(const std::string& text, std::string_view needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + needle.size())) ++n;
  return n;
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
}

// The user messages' texts of a saved transcript.
std::vector<std::string> user_texts(const nlohmann::json& transcript) {
  std::vector<std::string> out;
  for (const auto& m : transcript) {
    if (m.value("role", "") != "user") continue;
    for (const auto& part : m["content"])
      if (part.value("type", "") == "text") out.push_back(part.value("text", ""));
  }
  return out;
}

TEST(ChatCli, PipedScript) {
  const std::string dir = test::scratch_dir("chat_piped");
  const std::string saved = dir + "/t.json";
  const std::string script = "/image " + test::repo_path("examples/blue_triangle.png") +
                             "\n"
                             "What do you see?\n"
                             "What shape is it?\n"  // a second turn: the image is still in the cache
                             "/image /nonexistent.png\n"
                             "\n"
                             "/bogus\n"
                             "/reset\n"
                             "Hello!\n"
                             "/save " + saved + "\n"
                             "/quit\n"
                             "This line comes after /quit and is never read.\n";
  const auto r = test::run_command(test::unicorn_binary() + " chat", script);
  EXPECT_EQ(r.status, 0) << r.err;
  // Answers alone on stdout, one per turn.
  EXPECT_EQ(r.out,
            "A blue triangle in the top right.\n"
            "It is a triangle.\n"
            "Hello! Show me a picture of a shape and ask me about it.\n")
      << r.err;
  // Notices and errors on stderr; the chat went on after each error.
  EXPECT_NE(r.err.find("attached " + test::repo_path("examples/blue_triangle.png")), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: /nonexistent.png"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("error: unknown command '/bogus'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("forgotten"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("saved 2 messages to " + saved), std::string::npos) << r.err;
  // No prompts when the input is not a terminal.
  EXPECT_EQ(r.err.find("> "), std::string::npos) << r.err;

  // /reset forgot the image turns: the transcript holds the greeting only.
  const nlohmann::json t = read_json(saved);
  ASSERT_TRUE(t.is_array()) << t;
  ASSERT_EQ(t.size(), 2u) << t;
  EXPECT_EQ(t[0]["role"], "user");
  ASSERT_TRUE(t[0]["content"].is_array()) << t;
  ASSERT_EQ(t[0]["content"].size(), 1u) << t;
  EXPECT_EQ(t[0]["content"][0]["type"], "text");
  EXPECT_EQ(t[0]["content"][0]["text"], "Hello!");
  EXPECT_EQ(t[1]["role"], "assistant");
  EXPECT_EQ(t[1]["content"], "Hello! Show me a picture of a shape and ask me about it.");
}

TEST(ChatCli, SaveWithImagesAndSystemPrompt) {
  const std::string dir = test::scratch_dir("chat_save");
  const std::string script = "/image " + test::repo_path("examples/red_circle.jpg") + "\nWhat do you see?\n/save " +
                             dir + "/t.json\n/save " + dir + "/missing/folder/t.json\n";
  // The end of input (no /quit) also ends the chat normally.
  const auto r = test::run_command(test::unicorn_binary() + " chat --system 'Be brief.'", script);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("error: cannot write the conversation to " + dir + "/missing/folder/t.json"),
            std::string::npos)
      << r.err;
  const nlohmann::json t = read_json(dir + "/t.json");
  ASSERT_EQ(t.size(), 3u) << t;
  EXPECT_EQ(t[0]["role"], "system");
  EXPECT_EQ(t[0]["content"], "Be brief.");
  ASSERT_EQ(t[1]["content"].size(), 2u) << t;
  EXPECT_EQ(t[1]["content"][0]["type"], "image");
  EXPECT_EQ(t[1]["content"][0]["crops"], 0);
  EXPECT_EQ(t[1]["content"][1]["text"], "What do you see?");
  EXPECT_EQ(t[2]["role"], "assistant");
}

TEST(ChatCli, TurnErrorsKeepTheChatGoing) {
  // A context too small for the message: the turn fails, the next (short) one is answered.
  std::string long_message;
  for (int i = 0; i < 200; ++i) long_message += "word ";
  const auto r = test::run_command(test::unicorn_binary() + " chat -c 64", long_message + "\nHello!\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("error: the prompt needs"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "Hello! Show me a picture of a shape and ask me about it.\n") << r.err;
}

TEST(ChatCli, FullContextDropsTheOldestTurns) {
  // 40 tokens hold one greeting turn (26 tokens) and the start of a second: the third
  // message drops the first turn, and says so.
  const auto r = test::run_command(test::unicorn_binary() + " chat -c 40", "Hello!\nHello!\nHello!\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("Hello! Show me a picture of a shape and ask me about it.\n")) << r.out;
  EXPECT_EQ(count(r.out, "\n"), 3u) << r.out;
  EXPECT_EQ(count(r.err, "the context was full"), 1u) << r.err;
  EXPECT_NE(r.err.find("the context was full: the 1 oldest turn was dropped"), std::string::npos) << r.err;
}

TEST(ChatCli, HelpStatesTheContextPolicy) {
  const auto r = test::run_command(test::unicorn_binary() + " chat --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("the oldest turns are dropped (the system prompt is kept)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/image PATH"), std::string::npos) << r.out;
}

// `unicorn chat` in a detached tmux session on a tmux server of its own (so that neither the
// user's sessions nor their configuration are involved), killed when the test ends.
class TmuxChat {
 public:
  static bool available() { return test::run_command("tmux -V").status == 0; }

  explicit TmuxChat(const std::string& chat_args) {
    static std::atomic<int> serial{0};
    socket_ = "unicorn-chat-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
    status_file_ = test::scratch_dir(socket_) + "/status";
    // The exit status goes to a file: tmux closes the session when the command ends.
    const std::string command = shell_quote(test::unicorn_binary()) + " chat " + chat_args + "; echo $? > " +
                                shell_quote(status_file_);
    const auto r = tmux("new-session -d -s chat -x 120 -y 40 -c " + shell_quote(test::repo_path("")) + " " +
                        shell_quote(command));
    EXPECT_EQ(r.status, 0) << r.err;
  }
  ~TmuxChat() { tmux("kill-server"); }
  TmuxChat(const TmuxChat&) = delete;
  TmuxChat& operator=(const TmuxChat&) = delete;

  void type(const std::string& text) { tmux("send-keys -t chat -l " + shell_quote(text)); }
  void key(const std::string& name) { tmux("send-keys -t chat " + name); }
  void line(const std::string& text) {
    type(text);
    key("Enter");
  }
  // Everything the pane showed, scrollback included, wrapped lines joined.
  std::string screen() { return tmux("capture-pane -p -J -S - -t chat").out; }
  bool alive() { return tmux("has-session -t chat").status == 0; }
  // The chat's exit status, once it has ended.
  std::string exit_status() {
    std::ifstream f(status_file_);
    std::string s;
    std::getline(f, s);
    return s;
  }

  // Polls the screen every 100 ms until `done(screen)` holds, for up to 20 s.
  template <class Pred>
  bool wait_for(Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done(screen())) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  bool wait_for_text(const std::string& text, size_t times = 1) {
    return wait_for([&](const std::string& s) { return count(s, text) >= times; });
  }
  // The prompt is shown on the last line, with nothing typed after it.
  bool wait_for_prompt(size_t times) {
    return wait_for([&](const std::string& s) { return last_line(s).ends_with(">") && prompts(s) >= times; });
  }
  bool wait_for_exit() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!alive()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static std::string rtrim(std::string l) {
    l.erase(l.find_last_not_of(' ') + 1);
    return l;
  }
  static std::string last_line(const std::string& s) {
    std::istringstream in(s);
    std::string l, last;
    while (std::getline(in, l))
      if (!rtrim(l).empty()) last = rtrim(l);
    return last;
  }
  // Lines that start with a prompt ("> " or "[1 image] > ").
  static size_t prompts(const std::string& s) {
    std::istringstream in(s);
    std::string l;
    size_t n = 0;
    while (std::getline(in, l)) n += l.starts_with(">") || (l.starts_with("[") && l.find("] >") != std::string::npos);
    return n;
  }

 private:
  test::CommandResult tmux(const std::string& args) {
    return test::run_command("tmux -f /dev/null -L " + socket_ + " " + args);
  }
  std::string socket_, status_file_;
};

TEST(ChatCli, TerminalEditingHistoryAndCtrlC) {
  if (!TmuxChat::available()) GTEST_SKIP() << "tmux is not installed (scripts/install-deps.sh installs it)";
  const std::string saved = test::scratch_dir("chat_tmux") + "/t.json";
  TmuxChat chat("");
  ASSERT_TRUE(chat.wait_for_prompt(1)) << chat.screen();

  // An image question (a path relative to the working folder).
  chat.line("/image examples/blue_triangle.png");
  ASSERT_TRUE(chat.wait_for_text("[1 image] >")) << chat.screen();
  chat.line("What do you see?");
  ASSERT_TRUE(chat.wait_for_text("A blue triangle in the top right.")) << chat.screen();
  ASSERT_TRUE(chat.wait_for_prompt(3)) << chat.screen();

  // History: Up brings back the question, Enter asks it again.
  chat.key("Up");
  ASSERT_TRUE(chat.wait_for([](const std::string& s) { return TmuxChat::last_line(s) == "> What do you see?"; }))
      << chat.screen();
  chat.key("Enter");
  ASSERT_TRUE(chat.wait_for_text("A blue triangle in the top right.", 2)) << chat.screen();
  ASSERT_TRUE(chat.wait_for_prompt(4)) << chat.screen();

  // Ctrl-C at the prompt drops the half-typed line and shows a fresh prompt.
  chat.type("this line is abandoned");
  ASSERT_TRUE(chat.wait_for_text("> this line is abandoned")) << chat.screen();
  chat.key("C-c");
  ASSERT_TRUE(chat.wait_for_text("this line is abandoned^C")) << chat.screen();
  ASSERT_TRUE(chat.wait_for_prompt(5)) << chat.screen();
  chat.line("What color is the shape?");
  ASSERT_TRUE(chat.wait_for_text("The shape is blue.")) << chat.screen();
  ASSERT_TRUE(chat.wait_for_prompt(6)) << chat.screen();

  // The abandoned line never reached the conversation.
  chat.line("/save " + saved);
  ASSERT_TRUE(chat.wait_for_text("saved 6 messages")) << chat.screen();
  EXPECT_EQ(user_texts(read_json(saved)),
            (std::vector<std::string>{"What do you see?", "What do you see?", "What color is the shape?"}));

  chat.line("/quit");
  ASSERT_TRUE(chat.wait_for_exit()) << chat.screen();
  EXPECT_EQ(chat.exit_status(), "0");
}

TEST(ChatCli, TerminalCtrlCStopsAnAnswer) {
  if (!TmuxChat::available()) GTEST_SKIP() << "tmux is not installed (scripts/install-deps.sh installs it)";
  // A temperature this high makes the demo model's sampling nearly uniform over its 262k
  // tokens, so the end of turn is almost never drawn: the answer runs until stopped.
  TmuxChat chat("--temp 100 --seed 3 -n 1000000");
  ASSERT_TRUE(chat.wait_for_prompt(1)) << chat.screen();
  chat.line("Hello!");
  // Wait until the answer is being written: text after the question's line.
  ASSERT_TRUE(chat.wait_for([](const std::string& s) {
    const size_t at = s.find("> Hello!\n");
    return at != std::string::npos && s.find_first_not_of(" \n", at + 9) != std::string::npos;
  })) << chat.screen();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  chat.key("C-c");
  ASSERT_TRUE(chat.wait_for_text("[stopped]")) << chat.screen();
  ASSERT_TRUE(chat.wait_for_prompt(2)) << chat.screen();

  // The chat goes on, and Ctrl-D leaves it normally.
  chat.line("/help");
  ASSERT_TRUE(chat.wait_for_text("/save FILE")) << chat.screen();
  ASSERT_TRUE(chat.wait_for_prompt(3)) << chat.screen();
  chat.key("C-d");
  ASSERT_TRUE(chat.wait_for_exit()) << chat.screen();
  EXPECT_EQ(chat.exit_status(), "0");
}

}  // namespace
}  // namespace unicorn
