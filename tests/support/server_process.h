// A `unicorn serve` child process for end-to-end tests: started on a free port (--port 0;
// the port is read from its "listening on" line), ready once GET /health answers, stopped
// with SIGTERM (a clean stop exits 0).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace unicorn::test {

class ServerProcess {
 public:
  // Starts `unicorn serve --port 0 ARGS...`; throws std::runtime_error (with the server's
  // stderr) if it exits or is not ready within the timeout.
  explicit ServerProcess(const std::vector<std::string>& args, int timeout_seconds = 120);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  // Everything the server wrote on stderr so far.
  std::string log() const;
  // SIGTERM, then waits (SIGKILL after `timeout_seconds`). Returns the exit status (128 +
  // signal when killed); -1 if it was already stopped.
  int stop(int timeout_seconds = 30);
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string dir_;
};

// Runs `node ARGS` in the repository root with UNICORN_BASE_URL, UNICORN_REPO_ROOT and the
// extra environment assignments (NAME=value) set; returns status and output.
struct NodeResult {
  int status = -1;
  std::string output;  // stdout and stderr together
};
NodeResult run_node(const std::string& args, const std::string& base_url, const std::vector<std::string>& env = {});

}  // namespace unicorn::test
