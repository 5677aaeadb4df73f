// Boost.Asio, with the include its 1.74 awaitable.hpp forgets under GCC 12 (std::exchange).
#pragma once

#include <utility>

#include <boost/asio.hpp>

namespace respguard {
namespace asio = boost::asio;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
}  // namespace respguard
