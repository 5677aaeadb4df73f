#include "respguard/observability/admin_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

namespace respguard::observability {
namespace {

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

// Handlers whose answers the test controls; counts the calls.
struct FakeHandlers {
  std::string metrics = "# TYPE x counter\nx 1\n";
  std::string reason;  // empty: ready
  std::atomic<int> metrics_calls{0};
  std::atomic<int> ready_calls{0};

  AdminHandlers handlers() {
    AdminHandlers h;
    h.metrics = [this] {
      ++metrics_calls;
      return metrics;
    };
    h.not_ready_reason = [this] {
      ++ready_calls;
      return reason;
    };
    return h;
  }
};

// ------------------------------------------------------------------------------ routing

TEST(AdminRoute, MetricsServesTheExposition) {
  FakeHandlers fake;
  const HttpResponse r = route_admin_request("GET", "/metrics", fake.handlers());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, kMetricsType);
  EXPECT_EQ(r.body, fake.metrics);
  EXPECT_EQ(fake.metrics_calls, 1);
  EXPECT_EQ(fake.ready_calls, 0);
}

TEST(AdminRoute, QueryStringIsIgnored) {
  FakeHandlers fake;
  EXPECT_EQ(route_admin_request("GET", "/metrics?name[]=x", fake.handlers()).status, 200);
  EXPECT_EQ(route_admin_request("GET", "/healthz?verbose", fake.handlers()).status, 200);
  EXPECT_EQ(fake.metrics_calls, 1);
}

TEST(AdminRoute, HealthzIsAliveEvenWhenNotReady) {
  FakeHandlers fake;
  fake.reason = "no upstream connection to 127.0.0.1:6379 is ready";
  const HttpResponse r = route_admin_request("GET", "/healthz", fake.handlers());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(fake.ready_calls, 0);  // liveness does not depend on the upstream
}

TEST(AdminRoute, ReadyzWhenReady) {
  FakeHandlers fake;
  const HttpResponse r = route_admin_request("GET", "/readyz", fake.handlers());
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready\n");
  EXPECT_EQ(fake.ready_calls, 1);
}

TEST(AdminRoute, ReadyzWhenNotReadySaysWhyWith503) {
  FakeHandlers fake;
  fake.reason = "shutting down";
  const HttpResponse r = route_admin_request("GET", "/readyz", fake.handlers());
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.content_type, "text/plain");
  EXPECT_EQ(r.body, "not ready: shutting down\n");
}

TEST(AdminRoute, UnknownPathsAre404) {
  FakeHandlers fake;
  for (std::string_view target : {"/", "/metrics/", "/Metrics", "/metricsx", "/ready", "", "*"}) {
    const HttpResponse r = route_admin_request("GET", target, fake.handlers());
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.body, "not found; try /metrics, /healthz or /readyz\n") << target;
  }
  EXPECT_EQ(fake.metrics_calls, 0);
}

TEST(AdminRoute, OtherMethodsAre405) {
  FakeHandlers fake;
  for (std::string_view method : {"POST", "PUT", "DELETE", "HEAD", "get"}) {
    for (std::string_view target : {"/metrics", "/healthz", "/readyz", "/nope"}) {
      const HttpResponse r = route_admin_request(method, target, fake.handlers());
      EXPECT_EQ(r.status, 405) << method << " " << target;
      EXPECT_EQ(r.body, "GET only\n");
    }
  }
  EXPECT_EQ(fake.metrics_calls, 0);
  EXPECT_EQ(fake.ready_calls, 0);
}

TEST(AdminRoute, ReloadIsPostOnlyAndAbsentWithoutAHandler) {
  FakeHandlers fake;
  AdminHandlers h = fake.handlers();
  EXPECT_EQ(route_admin_request("GET", "/reload", h).status, 404);
  EXPECT_EQ(route_admin_request("POST", "/reload", h).status, 405);
  int reloads = 0;
  h.reload = [&reloads] {
    ++reloads;
    return HttpResponse{400, "text/plain", "reload failed: x\n"};
  };
  const HttpResponse r = route_admin_request("POST", "/reload?now", h);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, "reload failed: x\n");
  for (std::string_view method : {"GET", "PUT", "HEAD", "post"}) {
    const HttpResponse not_post = route_admin_request(method, "/reload", h);
    EXPECT_EQ(not_post.status, 405) << method;
    EXPECT_EQ(not_post.body, "POST only\n");
  }
  EXPECT_EQ(reloads, 1);
  EXPECT_EQ(route_admin_request("GET", "/nope", h).body,
            "not found; try /metrics, /healthz, /readyz or POST /reload\n");
}

// ------------------------------------------------------------------------------ over TCP

// An AdminServer on 127.0.0.1:<ephemeral> served by its own thread.
class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<AdminServer>(io_, fake_.handlers());
    server_->listen(config::Endpoint{"127.0.0.1", 0});
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    guard_.reset();
    io_.stop();
    thread_.join();
  }

  // One exchange over a fresh connection: sends `chunks` one by one, reads until the server
  // closes (bounded by a 5 s receive timeout). The raw response.
  std::string exchange(const std::vector<std::string>& chunks) const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "(socket failed)";
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port_);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return "(connect failed)";
    }
    for (const std::string& chunk : chunks) {
      if (::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(chunk.size())) {
        break;  // the server may close early (oversized request); read what it said
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // separate reads on the server
    }
    std::string response;
    char buf[4096];
    while (true) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      response.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return response;
  }

  FakeHandlers fake_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_ = asio::make_work_guard(io_);
  std::unique_ptr<AdminServer> server_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

TEST_F(AdminServerTest, ServesMetricsWithLengthAndClose) {
  ASSERT_NE(port_, 0);
  const std::string body = fake_.metrics;
  EXPECT_EQ(exchange({"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"}),
            "HTTP/1.1 200 OK\r\nContent-Type: " + std::string(kMetricsType) +
                "\r\nContent-Length: " + std::to_string(body.size()) +
                "\r\nConnection: close\r\n\r\n" + body);
}

TEST_F(AdminServerTest, ReadyzNotReadyIs503) {
  fake_.reason = "no upstream";
  EXPECT_EQ(exchange({"GET /readyz HTTP/1.0\r\n\r\n"}),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: "
            "23\r\nConnection: close\r\n\r\nnot ready: no upstream\n");
}

TEST_F(AdminServerTest, RequestInPiecesIsAssembled) {
  const std::string response =
      exchange({"GE", "T /heal", "thz HTTP/1.1\r", "\nHost: x\r\n", "\r\n"});
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200 OK\r\n")) << response;
  EXPECT_TRUE(response.ends_with("\r\n\r\nok\n")) << response;
}

TEST_F(AdminServerTest, MalformedRequestLineIs400) {
  const std::string response = exchange({"NONSENSE\r\n\r\n"});
  EXPECT_TRUE(response.starts_with("HTTP/1.1 400 Bad Request\r\n")) << response;
}

TEST_F(AdminServerTest, OversizedRequestIs400) {
  const std::string response =
      exchange({"GET /metrics HTTP/1.1\r\nX-Filler: " + std::string(10000, 'a')});
  EXPECT_TRUE(response.starts_with("HTTP/1.1 400 Bad Request\r\n")) << response;
  EXPECT_TRUE(response.ends_with("request too large\n")) << response;
  EXPECT_EQ(fake_.metrics_calls, 0);
}

TEST_F(AdminServerTest, PostIs405AndUnknownIs404) {
  EXPECT_TRUE(exchange({"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"})
                  .starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_TRUE(
      exchange({"GET /favicon.ico HTTP/1.1\r\n\r\n"}).starts_with("HTTP/1.1 404 Not Found\r\n"));
}

}  // namespace
}  // namespace respguard::observability
