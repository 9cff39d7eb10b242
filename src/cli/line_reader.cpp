#include "cli/line_reader.h"

#include <sys/select.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

#ifdef UNICORN_HAVE_READLINE
#include <readline/history.h>
#include <readline/readline.h>
#endif

namespace unicorn::cli {

namespace {

// What the SIGINT handler sets. A signal handler can reach nothing but globals; a lock-free
// atomic is safe to store from it.
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);
bool g_reader_exists = false;

extern "C" void on_sigint(int) { g_interrupted.store(true); }

// Blocks SIGINT for the scope, so that it is delivered only inside pselect(): a Ctrl-C that
// comes just before the wait then ends the wait instead of being noticed one key too late.
class SigintBlocked {
 public:
  SigintBlocked() {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &previous_);
    waiting_ = previous_;
    sigdelset(&waiting_, SIGINT);
  }
  ~SigintBlocked() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SigintBlocked(const SigintBlocked&) = delete;
  SigintBlocked& operator=(const SigintBlocked&) = delete;

  // Waits until stdin is readable (true) or a signal arrived (false).
  bool wait_for_stdin() const {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(STDIN_FILENO, &fds);
    const int r = pselect(STDIN_FILENO + 1, &fds, nullptr, nullptr, nullptr, &waiting_);
    if (r < 0 && errno != EINTR) fail("cannot wait for input on stdin: {}", std::strerror(errno));
    return r > 0;
  }

 private:
  sigset_t previous_{}, waiting_{};
};

#ifdef UNICORN_HAVE_READLINE
// readline's callback interface hands the finished line to a plain function.
struct ReadlineResult {
  bool done = false;
  LineReader::Input input;
} g_readline;

extern "C" void on_readline_line(char* line) {
  g_readline.done = true;
  if (line) {
    g_readline.input = {LineReader::Status::Line, line};
    if (*line) add_history(line);
    std::free(line);
  } else {
    g_readline.input = {LineReader::Status::End, {}};
    std::fputc('\n', stdout);  // Ctrl-D: leave the terminal on a fresh line
  }
  // Removed here, not after returning: readline would otherwise show the next prompt at
  // once, before the answer. Removing also gives the terminal back its normal mode, so
  // Ctrl-C still raises SIGINT while the answer streams.
  rl_callback_handler_remove();
}
#endif

}  // namespace

LineReader::LineReader() {
  if (g_reader_exists) fail("internal: only one LineReader may exist at a time");
  interactive_ = isatty(STDIN_FILENO) != 0;
#ifdef UNICORN_HAVE_READLINE
  use_readline_ = interactive_;
  // Readline's own handlers would redraw and re-raise on Ctrl-C; ours only sets the flag
  // so that the loop below decides what Ctrl-C means.
  rl_catch_signals = 0;
  rl_readline_name = "unicorn";  // for "$if unicorn" sections in ~/.inputrc
#endif
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  // Restart interrupted writes of the streamed answer; waiting is done with pselect(),
  // which a signal always interrupts.
  sa.sa_flags = SA_RESTART;
  if (sigaction(SIGINT, &sa, &previous_) != 0) fail("cannot install the Ctrl-C handler: {}", std::strerror(errno));
  g_interrupted.store(false);
  g_reader_exists = true;
}

LineReader::~LineReader() {
  sigaction(SIGINT, &previous_, nullptr);
  g_reader_exists = false;
}

std::atomic<bool>& LineReader::interrupted() { return g_interrupted; }

LineReader::Input LineReader::read(const std::string& prompt) {
  return use_readline_ ? read_line_editor(prompt) : read_plain(prompt);
}

#ifdef UNICORN_HAVE_READLINE
LineReader::Input LineReader::read_line_editor(const std::string& prompt) {
  SigintBlocked blocked;
  g_readline = {};
  g_interrupted.store(false);  // a Ctrl-C that came before the prompt is not for it
  rl_callback_handler_install(prompt.c_str(), on_readline_line);
  try {
    while (!g_readline.done) {
      if (g_interrupted.exchange(false)) {
        // Ctrl-C at the prompt: end any search in progress, show ^C after what was typed
        // as a shell does, drop the line and start again on a fresh prompt.
        rl_callback_sigcleanup();
        rl_point = rl_end;
        rl_redisplay();
        std::fputs("^C", stdout);
        rl_free_line_state();
        rl_replace_line("", 0);
        // Removing the handler ends bracketed-paste mode with "\r": the newline comes after.
        rl_callback_handler_remove();
        std::fputc('\n', stdout);
        std::fflush(stdout);
        rl_callback_handler_install(prompt.c_str(), on_readline_line);
        continue;
      }
      if (blocked.wait_for_stdin()) rl_callback_read_char();
    }
  } catch (...) {
    rl_callback_handler_remove();
    throw;
  }
  return g_readline.input;
}
#else
LineReader::Input LineReader::read_line_editor(const std::string& prompt) { return read_plain(prompt); }
#endif

LineReader::Input LineReader::read_plain(const std::string& prompt) {
  SigintBlocked blocked;
  auto show_prompt = [&] {
    if (!interactive_) return;
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  };
  show_prompt();
  g_interrupted.store(false);
  for (;;) {
    const size_t newline = buffer_.find('\n');
    if (newline != std::string::npos || (end_ && !buffer_.empty())) {
      Input in{Status::Line, buffer_.substr(0, newline)};
      buffer_.erase(0, newline == std::string::npos ? buffer_.size() : newline + 1);
      if (!in.text.empty() && in.text.back() == '\r') in.text.pop_back();  // a script with CRLF lines
      return in;
    }
    if (end_) return {Status::End, {}};
    if (g_interrupted.exchange(false)) {
      // Piped input: Ctrl-C means stop. At a terminal without readline the kernel has
      // already flushed the typed characters; show a fresh prompt.
      if (!interactive_) return {Status::Interrupted, {}};
      buffer_.clear();
      std::fputc('\n', stdout);
      show_prompt();
      continue;
    }
    if (!blocked.wait_for_stdin()) continue;
    char chunk[4096];
    const ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      fail("cannot read stdin: {}", std::strerror(errno));
    }
    if (n == 0) {
      end_ = true;
      if (interactive_) std::fputc('\n', stdout);
    } else {
      buffer_.append(chunk, size_t(n));
    }
  }
}

}  // namespace unicorn::cli
