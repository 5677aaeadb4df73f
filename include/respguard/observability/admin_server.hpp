// The admin HTTP listener: GET /metrics (Prometheus text), /healthz (alive), /readyz (config
// loaded, listening, upstream reachable), POST /reload (re-read the configuration). A deliberately
// small HTTP/1.1 server on the main thread's io_context: one request per connection, bounded
// request size and time — an operator's scrape path, not a web server.
#pragma once

#include <functional>
#include <string>

#include "respguard/common/asio.hpp"
#include "respguard/config/config.hpp"

namespace respguard::observability {

struct HttpResponse {
  int status;
  std::string content_type;
  std::string body;
};

struct AdminHandlers {
  std::function<std::string()> metrics;  // Prometheus exposition text
  // Empty when ready; otherwise why not (the /readyz body).
  std::function<std::string()> not_ready_reason;
  // POST /reload: re-reads the configuration (200 applied, 400 refused; the body says what).
  // Null: the route answers 404.
  std::function<HttpResponse()> reload;
};

class AdminServer {
 public:
  AdminServer(asio::io_context& io, AdminHandlers handlers);
  void listen(const config::Endpoint& endpoint);  // throws std::system_error
  void close();
  std::uint16_t port() const;

 private:
  void accept();

  asio::io_context& io_;
  AdminHandlers handlers_;
  tcp::acceptor acceptor_;
};

// Routes one request target to (status code, content type, body). Pure, for tests.
HttpResponse route_admin_request(std::string_view method, std::string_view target,
                                 const AdminHandlers& handlers);

}  // namespace respguard::observability
