// The composition root: parse the command line, load the config, set up logging, run.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "respguard/config/cli.hpp"
#include "respguard/observability/metrics.hpp"
#include "respguard/protection/acl.hpp"
#include "respguard/server/server.hpp"

using namespace respguard;

int main(int argc, char** argv) {
  config::CliOptions cli;
  try {
    cli = config::parse_cli(argc, argv);
  } catch (const config::ConfigError& e) {
    std::cerr << "respguard: " << e.what() << "\n\n" << config::usage();
    return 2;
  }
  switch (cli.action) {
    case config::CliOptions::Action::Help:
      std::cout << config::usage();
      return 0;
    case config::CliOptions::Action::Version:
      std::cout << config::version_string() << "\n";
      return 0;
    case config::CliOptions::Action::PrintConfigReference:
      std::cout << config::reference_markdown();
      return 0;
    case config::CliOptions::Action::PrintMetrics:
      std::cout << observability::metrics_markdown();
      return 0;
    case config::CliOptions::Action::HashPassword: {
      std::string input((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
      std::cout << config::password_hash_from_input(input) << "\n";
      return 0;
    }
    default:
      break;
  }

  config::Config cfg;
  try {
    cfg = config::resolve(cli);
  } catch (const config::ConfigError& e) {
    std::cerr << "respguard: " << e.what() << "\n";
    return 2;
  }
  try {
    protection::Acl acl(cfg.auth);  // the users' ACL rules: parsed here, not by the loader
  } catch (const std::invalid_argument& e) {
    std::cerr << "respguard: " << cli.config_path.value_or("<command line>") << ": " << e.what()
              << "\n";
    return 2;
  }
  if (cli.action == config::CliOptions::Action::CheckConfig) {
    std::cout << "respguard: " << *cli.config_path << ": OK\n";
    return 0;
  }

  auto logger = spdlog::stderr_color_mt("respguard");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(cfg.log.level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  // A client that disconnects mid-write must not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    // A reload reads the file again with the same command-line overrides, and checks the
    // users' ACL rules as above (LiveConfig parses them).
    server::Server server(cfg, [&cli] { return config::resolve(cli); });
    server.bind();
    return server.run();
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
