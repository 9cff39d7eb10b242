// The chat's input: one line at a time from stdin, with GNU readline's editing and history
// when stdin is a terminal (and readline was built in), else plain reads so that scripts can
// pipe their input. Ctrl-C only sets a flag (the SIGINT handler does nothing else, which is
// all a handler may safely do); the reader turns it into "discard the line being typed", and
// the chat passes the same flag to generation as its cancel flag to stop an answer.
#pragma once

#include <atomic>
#include <csignal>
#include <string>

namespace unicorn::cli {

class LineReader {
 public:
  enum class Status {
    Line,         // a line was read (without its newline)
    End,          // end of input: Ctrl-D at the prompt, or the end of a piped script
    Interrupted,  // Ctrl-C while waiting for piped input (at a terminal it only clears the line)
  };
  struct Input {
    Status status = Status::End;
    std::string text;
  };

  // Installs the SIGINT handler; only one LineReader may exist at a time.
  LineReader();
  // Restores the previous SIGINT action.
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Waits for the next line, showing `prompt` first when interactive. Lines typed at a
  // terminal go into the history.
  Input read(const std::string& prompt);

  // A person types at a terminal: prompts are shown and Ctrl-C at the prompt clears the line.
  bool interactive() const { return interactive_; }
  // Set by Ctrl-C. Clear it before starting work that Ctrl-C should stop.
  std::atomic<bool>& interrupted();

 private:
  Input read_line_editor(const std::string& prompt);
  Input read_plain(const std::string& prompt);

  bool interactive_ = false;
  bool use_readline_ = false;
  struct sigaction previous_ {};
  std::string buffer_;  // plain reads: bytes after the last returned line
  bool end_ = false;    // plain reads: stdin reached its end
};

}  // namespace unicorn::cli
