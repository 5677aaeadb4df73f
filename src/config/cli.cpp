// Command-line parsing. The flags are one table (kFlags) that both the parser and usage() read.
// Values are parsed by the same code as the file (parse_endpoint, set_option), so a flag and
// its YAML key accept the same text and fail with the same reason.
#include "respguard/config/cli.hpp"

#include "respguard/common/sha256.hpp"

#include <algorithm>
#include <stdexcept>
#include <string_view>

namespace respguard::config {
namespace {

using Action = CliOptions::Action;

struct Flag {
  std::string_view name;
  std::string_view value;  // metavariable, "" for a flag without a value
  std::string_view help;
  Action action = Action::Run;  // what the flag asks respguard to do instead of running
};

constexpr Flag kFlags[] = {
    {"--config", "FILE", "Load the configuration from FILE (without it: built-in defaults)."},
    {"--check-config", "FILE", "Validate FILE (and the other flags), report the result, exit.",
     Action::CheckConfig},
    {"--listen", "HOST:PORT", "Address clients connect to (key: listen)."},
    {"--upstream", "HOST:PORT", "The Redis server to forward to (key: upstream.address)."},
    {"--workers", "N", "Worker threads; 0 = one per CPU core (key: workers)."},
    {"--log-level", "LEVEL", "trace, debug, info, warn, error, critical or off (key: log_level)."},
    {"--admin", "HOST:PORT",
     "Admin HTTP listener: /metrics, /healthz, /readyz (key: admin.listen)."},
    {"--print-metrics", "", "Print the metrics reference (Markdown) and exit.",
     Action::PrintMetrics},
    {"--print-config-reference", "", "Print the configuration reference (Markdown) and exit.",
     Action::PrintConfigReference},
    {"--hash-password", "",
     "Read a password from stdin, print its SHA-256 for auth.users[].password_sha256, exit.",
     Action::HashPassword},
    {"--version", "", "Print the version and exit.", Action::Version},
    {"--help", "", "Print this help and exit.", Action::Help},
};

const Flag* find_flag(std::string_view name) {
  for (const Flag& flag : kFlags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

}  // namespace

CliOptions parse_cli(int argc, const char* const* argv) {
  CliOptions out;
  std::string action_flag;  // the flag that chose out.action, for a conflict message
  bool have_config = false;
  bool have_check = false;

  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h") arg = "--help";
    if (!arg.starts_with("--")) {
      throw ConfigError("unexpected argument '" + std::string(arg) + "' (see --help)");
    }
    std::string_view name = arg;
    std::optional<std::string_view> inline_value;  // from "--flag=value"
    if (std::size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      inline_value = arg.substr(eq + 1);
    }
    const Flag* flag = find_flag(name);
    if (flag == nullptr) {
      throw ConfigError("unknown option '" + std::string(name) + "' (see --help)");
    }
    const std::string flag_name(name);

    std::string value;
    if (!flag->value.empty()) {
      if (inline_value) {
        value = std::string(*inline_value);
      } else if (i + 1 < argc && !std::string_view(argv[i + 1]).starts_with('-')) {
        // A following "-x" is taken as the next flag, not a value: "--config --version" is a
        // forgotten FILE far more often than a file named "--version" (use --config=FILE).
        value = argv[++i];
      }
      if (value.empty()) {
        throw ConfigError(flag_name + " needs a value (" + std::string(flag->value) + ")");
      }
    } else if (inline_value) {
      throw ConfigError(flag_name + " takes no value");
    }

    if (flag->action != Action::Run) {
      if (out.action != Action::Run && out.action != flag->action) {
        throw ConfigError(flag_name + " cannot be combined with " + action_flag);
      }
      out.action = flag->action;
      action_flag = flag_name;
    }

    try {
      if (name == "--config") {
        have_config = true;
        out.config_path = value;
      } else if (name == "--check-config") {
        have_check = true;
        out.config_path = value;
      } else if (name == "--listen") {
        out.listen = parse_endpoint(value);
      } else if (name == "--upstream") {
        out.upstream = parse_endpoint(value);
      } else if (name == "--admin") {
        out.admin = parse_endpoint(value);
      } else if (name == "--workers") {
        // Through the schema, so the flag has exactly the key's syntax and range.
        Config scratch;
        set_option(scratch, "workers", value);
        out.workers = scratch.server.workers;
      } else if (name == "--log-level") {
        Config scratch;
        set_option(scratch, "log_level", value);
        out.log_level = scratch.log.level;
      }
    } catch (const std::invalid_argument& e) {
      throw ConfigError(flag_name + ": " + e.what());
    }
  }

  if (have_config && have_check) {
    throw ConfigError("--config and --check-config both name a file; give it once");
  }
  return out;
}

std::string password_hash_from_input(std::string_view input) {
  if (input.ends_with('\n')) input.remove_suffix(1);
  if (input.ends_with('\r')) input.remove_suffix(1);
  return common::sha256_hex(input);
}

Config resolve(const CliOptions& cli) {
  Config config = cli.config_path ? load_file(*cli.config_path) : Config{};
  if (cli.listen) config.server.listen = *cli.listen;
  if (cli.upstream) config.upstream.address = *cli.upstream;
  if (cli.admin) config.admin.listen = *cli.admin;
  if (cli.workers) config.server.workers = *cli.workers;
  if (cli.log_level) config.log.level = *cli.log_level;
  validate(config);  // also covers CliOptions built in code, which skip parse_cli's checks
  return config;
}

std::string usage() {
  std::string out =
      "Usage: respguard [OPTIONS]\n"
      "\n"
      "A Redis protocol proxy. Flags override the configuration file.\n"
      "\n"
      "Options:\n";
  for (const Flag& flag : kFlags) {
    std::string left = flag.name == "--help" ? "  -h, --help" : "  " + std::string(flag.name);
    if (!flag.value.empty()) left += " " + std::string(flag.value);
    left.resize(std::max<std::size_t>(left.size() + 2, 30), ' ');  // align the help column
    out += left + std::string(flag.help) + "\n";
  }
  out +=
      "\n"
      "Every flag with a value also accepts --flag=value.\n"
      "Quick start: respguard --upstream redis:6379\n";
  return out;
}

std::string version_string() {
  return std::string("respguard ") + RESPGUARD_VERSION + " (git " + RESPGUARD_GIT_SHA + ")";
}

}  // namespace respguard::config
