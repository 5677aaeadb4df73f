// libFuzzer target: config::load_string, the YAML configuration loader (yaml-cpp underneath).
//
// Whatever the bytes, load_string either returns a Config or throws ConfigError with a message
// naming the source: any other exception, a crash, a hang or a sanitizer report is a bug. A
// Config it returns must pass validate() (the loader promises a valid Config), and loading the
// same text again must give an equal Config.
#include <cstdio>
#include <exception>
#include <string>

#include "fuzz_support.hpp"
#include "respguard/config/config.hpp"

using respguard::config::Config;
using respguard::config::ConfigError;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  try {
    const Config config = respguard::config::load_string(yaml, "fuzz.yaml");
    try {
      respguard::config::validate(config);
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "loaded config fails validate(): %s\n", e.what());
      FUZZ_CHECK(!"a loaded config is valid");
    }
    FUZZ_CHECK(respguard::config::load_string(yaml, "fuzz.yaml") == config);
  } catch (const ConfigError& e) {
    const std::string_view message = e.what();
    FUZZ_CHECK(message.substr(0, 9) == "fuzz.yaml");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "load_string threw something other than ConfigError: %s\n", e.what());
    FUZZ_CHECK(!"only ConfigError escapes load_string");
  } catch (...) {
    FUZZ_CHECK(!"only ConfigError escapes load_string");
  }
  return 0;
}
