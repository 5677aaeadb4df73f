#include "respguard/server/server.hpp"

#include <spdlog/spdlog.h>

#include <csignal>
#include <thread>

#include "respguard/common/errors.hpp"

namespace respguard::server {
namespace {
constexpr std::chrono::milliseconds kDrainPoll{20};
}

Server::Server(const config::Config& config)
    : config_(config),
      shared_(config),
      acceptor_(io_),
      signals_(io_, SIGINT, SIGTERM),
      drain_timer_(io_) {
  unsigned n = config.server.workers;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(i, shared_));
}

Server::~Server() {
  for (auto& w : workers_) w->join();
}

void Server::bind() {
  const auto& listen = config_.server.listen;
  tcp::resolver resolver(io_);
  boost::system::error_code ec;
  auto results = resolver.resolve(listen.host, std::to_string(listen.port),
                                  tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    throw std::system_error(ec, "cannot resolve listen address " + listen.to_string());
  }
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw std::system_error(ec, "cannot listen on " + listen.to_string());
  acceptor_.listen(config_.server.tcp_backlog);
}

std::uint16_t Server::port() const { return acceptor_.local_endpoint().port(); }

int Server::run() {
  for (auto& w : workers_) w->start();
  spdlog::info("respguard listening on {} with {} workers, upstream {}",
               config_.server.listen.to_string(), workers_.size(),
               config_.upstream.address.to_string());
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (!ec) on_signal(signo);
  });
  accept();
  io_.run();
  stop_workers();
  spdlog::info("respguard stopped");
  return 0;
}

void Server::accept() {
  Worker& worker = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_.async_accept(worker.io(), [this, &worker](boost::system::error_code ec,
                                                      tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // EMFILE and friends: keep accepting; the listener must not die with one bad accept.
      spdlog::warn("accept: {}", ec.message());
    } else if (shared_.clients.load(std::memory_order_relaxed) >= config_.server.maxclients) {
      // As Redis: tell the client why, then close.
      std::string reply = "-" + std::string(errors::kMaxClients) + "\r\n";
      boost::system::error_code ignored;
      socket.non_blocking(true, ignored);
      socket.write_some(asio::buffer(reply), ignored);
      socket.close(ignored);
    } else {
      shared_.clients.fetch_add(1, std::memory_order_relaxed);
      worker.adopt(std::move(socket));
    }
    accept();
  });
}

void Server::on_signal(int signo) {
  if (draining_) {
    spdlog::warn("second signal {}: stopping now", signo);
    io_.stop();
    return;
  }
  draining_ = true;
  shared_.draining = true;
  spdlog::info("signal {}: draining (grace {} ms)", signo, config_.server.shutdown_grace.count());
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (auto& w : workers_) w->begin_drain();
  drain_deadline_ = SteadyClock::now() + config_.server.shutdown_grace;
  signals_.async_wait([this](boost::system::error_code ec, int signo) {
    if (!ec) on_signal(signo);
  });
  check_drained();
}

void Server::check_drained() {
  const std::size_t left = shared_.clients.load(std::memory_order_relaxed);
  if (left == 0) {
    io_.stop();
    return;
  }
  if (SteadyClock::now() >= drain_deadline_) {
    spdlog::warn("shutdown grace over with {} clients still busy; closing them", left);
    io_.stop();
    return;
  }
  drain_timer_.expires_after(kDrainPoll);
  drain_timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) check_drained();
  });
}

void Server::stop_workers() {
  for (auto& w : workers_) w->stop();
  for (auto& w : workers_) w->join();
}

}  // namespace respguard::server
