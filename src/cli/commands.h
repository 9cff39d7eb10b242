// The subcommands of `unicorn`. Each cmd_*.cpp defines one and registers it with a
// CommandRegistration at namespace scope, so adding a command touches no other file.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace unicorn::cli {

int run_cli(int argc, char** argv);

// `add` creates the subcommand on `app` and sets its callback; the callback runs the
// command and stores its exit status in `exit_code`. `order` sorts --help.
using AddCommand = std::function<void(CLI::App& app, int& exit_code)>;
struct CommandRegistration {
  CommandRegistration(int order, AddCommand add);
};

}  // namespace unicorn::cli
