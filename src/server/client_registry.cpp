#include "respguard/server/client_registry.hpp"

namespace respguard::server {

std::int64_t steady_ms(SteadyClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::shared_ptr<ClientInfo> ClientRegistry::add(std::uint64_t id, std::string addr,
                                                std::string laddr) {
  auto info = std::make_shared<ClientInfo>();
  info->id = id;
  info->addr = std::move(addr);
  info->laddr = std::move(laddr);
  info->created = SteadyClock::now();
  info->last_active_ms = steady_ms(info->created);
  std::lock_guard lock(mu_);
  clients_[id] = info;
  return info;
}

void ClientRegistry::remove(std::uint64_t id) {
  std::lock_guard lock(mu_);
  clients_.erase(id);
}

std::string ClientRegistry::format(const ClientInfo& c, SteadyClock::time_point now) const {
  const std::int64_t now_ms = steady_ms(now);
  const std::int64_t age = (now_ms - steady_ms(c.created)) / 1000;
  const std::int64_t idle = (now_ms - c.last_active_ms.load(std::memory_order_relaxed)) / 1000;
  std::string line;
  line.reserve(256);
  line += "id=" + std::to_string(c.id) + " addr=" + c.addr + " laddr=" + c.laddr +
          " fd=-1 name=" + c.name + " age=" + std::to_string(age) +
          " idle=" + std::to_string(idle < 0 ? 0 : idle) + " flags=" + c.flags +
          " db=" + std::to_string(c.db) +
          " sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 obl=0 oll=0 "
          "omem=0 tot-mem=0 events=r cmd=NULL user=default redir=-1 resp=" +
          std::to_string(c.resp) + " lib-name=" + c.lib_name + " lib-ver=" + c.lib_ver + "\n";
  return line;
}

std::string ClientRegistry::list() const {
  const auto now = SteadyClock::now();
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [id, info] : clients_) out += format(*info, now);
  return out;
}

std::string ClientRegistry::info_line(const ClientInfo& info) const {
  std::lock_guard lock(mu_);
  return format(info, SteadyClock::now());
}

}  // namespace respguard::server
