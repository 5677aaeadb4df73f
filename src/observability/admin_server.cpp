#include "respguard/observability/admin_server.hpp"

#include <spdlog/spdlog.h>

#include <memory>

namespace respguard::observability {
namespace {

constexpr std::size_t kMaxRequest = 8 * 1024;
constexpr std::chrono::seconds kRequestTimeout{5};

std::string_view status_text(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Bad Request";
  }
}

class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(tcp::socket socket, const AdminHandlers& handlers)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), handlers_(handlers) {}

  void start() {
    timer_.expires_after(kRequestTimeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->socket_.close();
    });
    read();
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(chunk_), [self = shared_from_this()](
                                                      boost::system::error_code ec, std::size_t n) {
      if (ec) {
        self->timer_.cancel();
        return;
      }
      self->request_.append(self->chunk_.data(), n);
      const std::size_t end = self->request_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (self->request_.size() > kMaxRequest)
          return self->respond({400, "text/plain", "request too large\n"});
        return self->read();
      }
      // Request line: METHOD SP TARGET SP VERSION
      std::string_view line(self->request_.data(), self->request_.find("\r\n"));
      const std::size_t sp1 = line.find(' ');
      const std::size_t sp2 = line.find(' ', sp1 + 1);
      if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) {
        return self->respond({400, "text/plain", "bad request\n"});
      }
      self->respond(route_admin_request(line.substr(0, sp1), line.substr(sp1 + 1, sp2 - sp1 - 1),
                                        self->handlers_));
    });
  }

  void respond(HttpResponse r) {
    response_ = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(status_text(r.status)) +
                "\r\nContent-Type: " + r.content_type +
                "\r\nContent-Length: " + std::to_string(r.body.size()) +
                "\r\nConnection: close\r\n\r\n" + r.body;
    asio::async_write(socket_, asio::buffer(response_),
                      [self = shared_from_this()](boost::system::error_code, std::size_t) {
                        boost::system::error_code ignored;
                        self->socket_.shutdown(tcp::socket::shutdown_both, ignored);
                        self->socket_.close(ignored);
                        self->timer_.cancel();
                      });
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  const AdminHandlers& handlers_;
  std::array<char, 2048> chunk_{};
  std::string request_;
  std::string response_;
};

}  // namespace

HttpResponse route_admin_request(std::string_view method, std::string_view target,
                                 const AdminHandlers& handlers) {
  if (const std::size_t q = target.find('?'); q != std::string_view::npos) {
    target = target.substr(0, q);
  }
  if (target == "/reload" && handlers.reload) {
    // A change, so not GET: a crawler or a prefetching browser must not reload the config.
    if (method != "POST") return {405, "text/plain", "POST only\n"};
    return handlers.reload();
  }
  if (method != "GET") return {405, "text/plain", "GET only\n"};
  if (target == "/metrics") {
    return {200, "text/plain; version=0.0.4; charset=utf-8", handlers.metrics()};
  }
  if (target == "/healthz") return {200, "text/plain", "ok\n"};
  if (target == "/readyz") {
    std::string reason = handlers.not_ready_reason();
    if (reason.empty()) return {200, "text/plain", "ready\n"};
    return {503, "text/plain", "not ready: " + reason + "\n"};
  }
  return {404, "text/plain",
          handlers.reload ? "not found; try /metrics, /healthz, /readyz or POST /reload\n"
                          : "not found; try /metrics, /healthz or /readyz\n"};
}

AdminServer::AdminServer(asio::io_context& io, AdminHandlers handlers)
    : io_(io), handlers_(std::move(handlers)), acceptor_(io) {}

void AdminServer::listen(const config::Endpoint& endpoint) {
  tcp::resolver resolver(io_);
  boost::system::error_code ec;
  auto results =
      resolver.resolve(endpoint.host, std::to_string(endpoint.port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    throw std::system_error(ec, "cannot resolve admin address " + endpoint.to_string());
  }
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep, ec);
  if (ec) throw std::system_error(ec, "cannot listen on admin address " + endpoint.to_string());
  acceptor_.listen();
  accept();
}

void AdminServer::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

std::uint16_t AdminServer::port() const {
  return acceptor_.local_endpoint().port();
}

void AdminServer::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) std::make_shared<HttpConnection>(std::move(socket), handlers_)->start();
    accept();
  });
}

}  // namespace respguard::observability
