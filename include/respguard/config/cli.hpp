// Command-line options. Flags override the file: `respguard --upstream redis:6379` is a
// complete quick start.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "respguard/config/config.hpp"

namespace respguard::config {

struct CliOptions {
  enum class Action {
    Run,
    CheckConfig,
    Version,
    Help,
    PrintConfigReference,
    PrintMetrics,
    HashPassword
  };
  Action action = Action::Run;
  std::optional<std::string> config_path;  // --config FILE, or the FILE of --check-config
  std::optional<std::string> log_level;    // --log-level LEVEL
  std::optional<Endpoint> listen;          // --listen HOST:PORT
  std::optional<Endpoint> upstream;        // --upstream HOST:PORT
  std::optional<unsigned> workers;         // --workers N
  std::optional<Endpoint> admin;           // --admin HOST:PORT
};

// Throws ConfigError on an unknown flag, a missing value or a bad address.
CliOptions parse_cli(int argc, const char* const* argv);

// Loads the file (when given; else defaults) and applies the overrides; validates the result.
Config resolve(const CliOptions& cli);

// --hash-password: what auth.users[].password_sha256 holds for the password read from stdin
// (`input`, without one trailing newline: `echo secret | respguard --hash-password`).
std::string password_hash_from_input(std::string_view input);

std::string usage();
std::string version_string();  // "respguard 0.1.0 (git abc1234)"

}  // namespace respguard::config
