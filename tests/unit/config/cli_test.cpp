#include "respguard/config/cli.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace respguard::config {
namespace {

using Action = CliOptions::Action;

CliOptions parse(std::vector<std::string> args) {
  args.insert(args.begin(), "respguard");
  std::vector<const char*> argv;
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parse_cli(static_cast<int>(argv.size()), argv.data());
}

// The message of the ConfigError that parsing `args` raises, or "(no error)".
std::string parse_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string resolve_error(const CliOptions& cli) {
  try {
    resolve(cli);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

// A file in the temp directory, removed at the end of the test. The name is unique per process,
// test and file, so parallel runs (ctest -j, two build trees) do not collide.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    static int counter = 0;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("respguard-cli-test-" + std::string(info->test_suite_name()) + "." + info->name() +
             "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter) + ".yaml");
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// --- parse_cli ----------------------------------------------------------------------------

TEST(ParseCli, NoArgumentsRunsWithDefaults) {
  const CliOptions cli = parse({});
  EXPECT_EQ(cli.action, Action::Run);
  EXPECT_FALSE(cli.config_path);
  EXPECT_FALSE(cli.log_level);
  EXPECT_FALSE(cli.listen);
  EXPECT_FALSE(cli.upstream);
  EXPECT_FALSE(cli.workers);
}

TEST(ParseCli, ValueFlagsAcceptSeparateValues) {
  const CliOptions cli =
      parse({"--config", "/etc/respguard.yaml", "--listen", "0.0.0.0:7000", "--upstream",
             "redis:6379", "--workers", "4", "--log-level", "debug"});
  EXPECT_EQ(cli.action, Action::Run);
  EXPECT_EQ(cli.config_path, "/etc/respguard.yaml");
  EXPECT_EQ(cli.listen, (Endpoint{"0.0.0.0", 7000}));
  EXPECT_EQ(cli.upstream, (Endpoint{"redis", 6379}));
  EXPECT_EQ(cli.workers, 4u);
  EXPECT_EQ(cli.log_level, "debug");
}

TEST(ParseCli, ValueFlagsAcceptEqualsForm) {
  const CliOptions cli =
      parse({"--config=/etc/respguard.yaml", "--listen=[::1]:7000", "--upstream=[2001:db8::1]:6379",
             "--workers=0", "--log-level=warn"});
  EXPECT_EQ(cli.config_path, "/etc/respguard.yaml");
  EXPECT_EQ(cli.listen, (Endpoint{"::1", 7000}));
  EXPECT_EQ(cli.upstream, (Endpoint{"2001:db8::1", 6379}));
  EXPECT_EQ(cli.workers, 0u);
  EXPECT_EQ(cli.log_level, "warn");
}

TEST(ParseCli, EqualsFormKeepsLaterEqualsSigns) {
  EXPECT_EQ(parse({"--config=a=b.yaml"}).config_path, "a=b.yaml");
}

TEST(ParseCli, LaterFlagWins) {
  EXPECT_EQ(parse({"--workers", "2", "--workers=3"}).workers, 3u);
}

TEST(ParseCli, LogLevelIsNormalized) {
  EXPECT_EQ(parse({"--log-level", "DEBUG"}).log_level, "debug");
}

TEST(ParseCli, Actions) {
  EXPECT_EQ(parse({"--version"}).action, Action::Version);
  EXPECT_EQ(parse({"--hash-password"}).action, Action::HashPassword);
  EXPECT_EQ(parse({"--help"}).action, Action::Help);
  EXPECT_EQ(parse({"-h"}).action, Action::Help);
  EXPECT_EQ(parse({"--print-config-reference"}).action, Action::PrintConfigReference);
  EXPECT_EQ(parse({"--version", "--version"}).action, Action::Version);
}

TEST(ParseCli, CheckConfigTakesTheFile) {
  CliOptions cli = parse({"--check-config", "respguard.yaml"});
  EXPECT_EQ(cli.action, Action::CheckConfig);
  EXPECT_EQ(cli.config_path, "respguard.yaml");
  cli = parse({"--check-config=other.yaml", "--workers", "2"});
  EXPECT_EQ(cli.action, Action::CheckConfig);
  EXPECT_EQ(cli.config_path, "other.yaml");
  EXPECT_EQ(cli.workers, 2u);
}

TEST(ParseCliErrors, UnknownFlag) {
  EXPECT_EQ(parse_error({"--frobnicate"}), "unknown option '--frobnicate' (see --help)");
  EXPECT_EQ(parse_error({"--frobnicate=1"}), "unknown option '--frobnicate' (see --help)");
}

TEST(ParseCliErrors, PositionalOrShortArguments) {
  EXPECT_EQ(parse_error({"respguard.yaml"}), "unexpected argument 'respguard.yaml' (see --help)");
  EXPECT_EQ(parse_error({"-c", "x"}), "unexpected argument '-c' (see --help)");
}

TEST(ParseCliErrors, MissingValue) {
  EXPECT_EQ(parse_error({"--config"}), "--config needs a value (FILE)");
  EXPECT_EQ(parse_error({"--config="}), "--config needs a value (FILE)");
  EXPECT_EQ(parse_error({"--check-config"}), "--check-config needs a value (FILE)");
  // A flag where the value belongs is a forgotten value, not a file named "--version".
  EXPECT_EQ(parse_error({"--config", "--version"}), "--config needs a value (FILE)");
  EXPECT_EQ(parse_error({"--workers", "-h"}), "--workers needs a value (N)");
  EXPECT_EQ(parse_error({"--listen"}), "--listen needs a value (HOST:PORT)");
}

TEST(ParseCliErrors, ValueForAFlagWithoutOne) {
  EXPECT_EQ(parse_error({"--version=1"}), "--version takes no value");
}

TEST(ParseCliErrors, BadAddress) {
  EXPECT_EQ(parse_error({"--listen", "nohost"}),
            "--listen: expected HOST:PORT such as 127.0.0.1:6379 or [::1]:6379, got 'nohost'");
  EXPECT_EQ(parse_error({"--upstream=redis:0"}),
            "--upstream: port must be between 1 and 65535, got 'redis:0'");
  EXPECT_EQ(parse_error({"--upstream", "::1:6379"}),
            "--upstream: IPv6 addresses need brackets, such as [::1]:6379, got '::1:6379'");
}

TEST(ParseCliErrors, BadWorkers) {
  EXPECT_EQ(parse_error({"--workers", "four"}),
            "--workers: expected a non-negative integer, got 'four'");
  EXPECT_EQ(parse_error({"--workers=-1"}), "--workers: expected a non-negative integer, got '-1'");
  EXPECT_EQ(parse_error({"--workers", "300"}), "--workers: must be at most 256, got '300'");
}

TEST(ParseCliErrors, BadLogLevel) {
  EXPECT_EQ(parse_error({"--log-level", "loud"}),
            "--log-level: expected one of trace, debug, info, warn, error, critical, off, got "
            "'loud'");
}

TEST(ParseCliErrors, ConflictingActions) {
  EXPECT_EQ(parse_error({"--version", "--help"}), "--help cannot be combined with --version");
  EXPECT_EQ(parse_error({"--check-config", "a.yaml", "-h"}),
            "--help cannot be combined with --check-config");
}

TEST(ParseCliErrors, ConfigAndCheckConfigTogether) {
  EXPECT_EQ(parse_error({"--config", "a.yaml", "--check-config", "b.yaml"}),
            "--config and --check-config both name a file; give it once");
}

// --- resolve ------------------------------------------------------------------------------

TEST(Resolve, WithoutAFileUsesDefaults) {
  EXPECT_TRUE(resolve(parse({})) == Config{});
}

TEST(Resolve, FlagsOverrideDefaults) {
  const Config c = resolve(parse({"--upstream", "redis:6380", "--workers", "3"}));
  EXPECT_EQ(c.upstream.address, (Endpoint{"redis", 6380}));
  EXPECT_EQ(c.server.workers, 3u);
  EXPECT_EQ(c.server.listen, Config{}.server.listen);
}

TEST(Resolve, FlagsOverrideTheFileAndTheRestOfTheFileStays) {
  TempFile file(
      "listen: 127.0.0.1:7000\nworkers: 4\nlog_level: error\nupstream:\n  address: a:1\n"
      "  request_timeout: 2s\n");
  const Config c = resolve(parse(
      {"--config", file.path(), "--workers", "8", "--upstream", "b:2", "--log-level", "trace"}));
  EXPECT_EQ(c.server.workers, 8u);
  EXPECT_EQ(c.upstream.address, (Endpoint{"b", 2}));
  EXPECT_EQ(c.log.level, "trace");
  EXPECT_EQ(c.server.listen, (Endpoint{"127.0.0.1", 7000}));
  EXPECT_EQ(c.upstream.request_timeout, Millis(2000));

  const Config listen = resolve(parse({"--config=" + file.path(), "--listen", "0.0.0.0:1"}));
  EXPECT_EQ(listen.server.listen, (Endpoint{"0.0.0.0", 1}));
  EXPECT_EQ(listen.server.workers, 4u);
}

TEST(Resolve, CheckConfigLoadsAndValidatesTheFile) {
  TempFile good("workers: 2\n");
  EXPECT_EQ(resolve(parse({"--check-config", good.path()})).server.workers, 2u);

  TempFile bad("workers: 2\nupstream:\n  connections_per_worker: 65\n");
  EXPECT_EQ(resolve_error(parse({"--check-config", bad.path()})),
            bad.path() + ":3: upstream.connections_per_worker: must be between 1 and 64, got '65'");

  EXPECT_EQ(resolve_error(parse({"--check-config", "/nonexistent/respguard.yaml"})),
            "/nonexistent/respguard.yaml: cannot open: No such file or directory");
}

TEST(Resolve, ValidatesOptionsBuiltInCode) {
  CliOptions cli;
  cli.workers = 1000;
  EXPECT_EQ(resolve_error(cli), "workers: must be at most 256, got '1000'");
  cli = CliOptions{};
  cli.log_level = "chatty";
  EXPECT_EQ(resolve_error(cli),
            "log_level: expected one of trace, debug, info, warn, error, critical, off, got "
            "'chatty'");
}

// --- usage and version --------------------------------------------------------------------

TEST(Usage, ListsEveryFlag) {
  const std::string text = usage();
  for (std::string_view flag : {"--config FILE", "--check-config FILE", "--listen HOST:PORT",
                                "--upstream HOST:PORT", "--workers N", "--log-level LEVEL",
                                "--print-config-reference", "--version", "-h, --help"}) {
    EXPECT_NE(text.find(flag), std::string::npos) << flag;
  }
  EXPECT_TRUE(text.starts_with("Usage: respguard"));
}

TEST(Version, NamesTheVersionAndCommit) {
  const std::string text = version_string();
  EXPECT_TRUE(std::regex_match(text, std::regex(R"(respguard \d+\.\d+\.\d+ \(git [^() ]+\))")))
      << text;
}

// What auth.users[].password_sha256 holds: the SHA-256 of stdin without one trailing newline.
TEST(Cli, HashPasswordDropsOneTrailingNewline) {
  const std::string abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
  EXPECT_EQ(password_hash_from_input("abc"), abc);
  EXPECT_EQ(password_hash_from_input("abc\n"), abc);
  EXPECT_EQ(password_hash_from_input("abc\r\n"), abc);
  EXPECT_NE(password_hash_from_input("abc\n\n"), abc);
}

}  // namespace
}  // namespace respguard::config
