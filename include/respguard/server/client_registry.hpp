// All client connections of the process, for CLIENT LIST / CLIENT INFO. Touched on connect,
// disconnect and the rare state change (SETNAME, SELECT, HELLO) — never per command.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "respguard/common/asio.hpp"

namespace respguard::server {

struct ClientInfo {
  std::uint64_t id = 0;
  std::string addr;   // peer "ip:port"
  std::string laddr;  // local "ip:port"
  SteadyClock::time_point created;
  // Guarded by the registry's mutex:
  std::string name;
  std::string lib_name;
  std::string lib_ver;
  int db = 0;
  int resp = 2;
  std::string flags = "N";
  // Written by the owning worker without the lock.
  std::atomic<std::int64_t> last_active_ms{0};  // steady clock, ms
};

class ClientRegistry {
 public:
  std::shared_ptr<ClientInfo> add(std::uint64_t id, std::string addr, std::string laddr);
  void remove(std::uint64_t id);
  template <typename Fn>
  void update(ClientInfo& info, Fn&& fn) {
    std::lock_guard lock(mu_);
    fn(info);
  }
  // Redis's CLIENT LIST line format ("id=7 addr=... name=... db=0 ... resp=2").
  std::string list() const;
  std::string info_line(const ClientInfo& info) const;

 private:
  std::string format(const ClientInfo& info, SteadyClock::time_point now) const;

  mutable std::mutex mu_;
  std::map<std::uint64_t, std::shared_ptr<ClientInfo>> clients_;
};

std::int64_t steady_ms(SteadyClock::time_point t);

}  // namespace respguard::server
