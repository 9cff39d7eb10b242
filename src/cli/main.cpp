// unicorn: the command-line frontend. Each subcommand lives in its own file (cmd_*.cpp) and
// registers itself in commands.h; this file only dispatches and turns errors into exit codes.
#include <cstdio>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "core/error.h"

int main(int argc, char** argv) {
  try {
    return unicorn::cli::run_cli(argc, argv);
  } catch (const unicorn::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
