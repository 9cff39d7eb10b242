#include "cli/commands.h"

#include <algorithm>
#include <vector>

namespace unicorn::cli {

namespace {
std::vector<std::pair<int, AddCommand>>& registry() {
  static std::vector<std::pair<int, AddCommand>> commands;
  return commands;
}
}  // namespace

CommandRegistration::CommandRegistration(int order, AddCommand add) {
  registry().emplace_back(order, std::move(add));
}

int run_cli(int argc, char** argv) {
  CLI::App app{"unicorn: Gemma 3 inference engine (text and images)", "unicorn"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "unicorn 0.1.0");
  int exit_code = 0;
  auto commands = registry();
  std::stable_sort(commands.begin(), commands.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, add] : commands) add(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}

}  // namespace unicorn::cli
