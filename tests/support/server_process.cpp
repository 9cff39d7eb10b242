#include "support/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <regex>
#include <stdexcept>
#include <thread>

#include "support/gemma_tokenizer.h"
#include "support/test_paths.h"

extern char** environ;

namespace unicorn::test {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

int exit_status(int raw) { return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + (WIFSIGNALED(raw) ? WTERMSIG(raw) : 0); }

}  // namespace

ServerProcess::ServerProcess(const std::vector<std::string>& args, int timeout_seconds) {
  static std::atomic<int> counter{0};
  dir_ = scratch_dir("server-" + std::to_string(counter++));
  const std::string err = dir_ + "/stderr";
  std::vector<std::string> argv_s = {unicorn_binary(), "serve", "--port", "0"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (dir_ + "/stdout").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // The child must not inherit a blocked SIGTERM or an ignored SIGINT from the test runner.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int rc = posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + argv_s[0]);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  const std::regex listening(R"(listening on http://[^:\s]+:(\d+))");
  while (std::chrono::steady_clock::now() < deadline) {
    int raw = 0;
    if (waitpid(pid_, &raw, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("unicorn serve exited with status " + std::to_string(exit_status(raw)) + ":\n" + log());
    }
    std::smatch m;
    const std::string text = log();
    if (port_ == 0 && std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
    if (port_ != 0) {
      httplib::Client cli("127.0.0.1", port_);
      cli.set_connection_timeout(2);
      if (auto res = cli.Get("/health"); res && res->status == 200) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  stop(5);
  throw std::runtime_error("unicorn serve was not ready in time:\n" + log());
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop();
}

std::string ServerProcess::log() const { return slurp(dir_ + "/stderr"); }

int ServerProcess::stop(int timeout_seconds) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  int raw = 0;
  for (;;) {
    if (waitpid(pid_, &raw, WNOHANG) == pid_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &raw, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return exit_status(raw);
}

NodeResult run_node(const std::string& args, const std::string& base_url, const std::vector<std::string>& env) {
  std::string cmd = "cd " + shell_quote(repo_path("")) + " && env UNICORN_BASE_URL=" + shell_quote(base_url) +
                    " UNICORN_REPO_ROOT=" + shell_quote(repo_path("")) + " PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1";
  for (const auto& e : env) cmd += " " + shell_quote(e);
  cmd += " node " + args + " 2>&1";
  const CommandResult r = run_command(cmd);
  return {r.status, r.out + r.err};
}

}  // namespace unicorn::test
