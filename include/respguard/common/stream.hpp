// A TCP socket that may carry TLS: what a client session and an upstream connection read from
// and write to. Plaintext stays a plain socket call behind one predictable branch (no virtual
// dispatch, no extra allocation); with TLS the same calls go through an asio::ssl::stream over
// the socket. The shape of an AsyncReadStream/AsyncWriteStream, so asio::async_write composes
// over it.
//
// The TLS session (SSL object and the context it came from) is reference counted and every
// TLS operation holds it until its handler runs: an upstream connection that fails and
// reconnects starts a fresh session while the old one's aborted operations complete.
#pragma once

#include <memory>
#include <utility>

#include "respguard/common/asio.hpp"

#include <boost/asio/ssl.hpp>

namespace respguard {

class Stream {
 public:
  using executor_type = tcp::socket::executor_type;
  using lowest_layer_type = tcp::socket;

  explicit Stream(tcp::socket socket) : socket_(std::move(socket)) {}
  explicit Stream(asio::io_context& io) : socket_(io) {}

  // Starts a new TLS session over the (connected) socket; handshake next. Replaces any
  // previous session. `context` stays alive as long as the session.
  void start_tls(std::shared_ptr<asio::ssl::context> context) {
    tls_ = std::make_shared<Session>(std::move(context), socket_);
  }
  // Back to plaintext (before reconnecting a socket whose TLS session failed).
  void stop_tls() { tls_.reset(); }
  bool tls() const { return tls_ != nullptr; }
  // The SSL object of the current session (TLS only).
  SSL* ssl() { return tls_->stream.native_handle(); }

  executor_type get_executor() { return socket_.get_executor(); }
  tcp::socket& socket() { return socket_; }
  lowest_layer_type& lowest_layer() { return socket_; }

  template <typename Handler>
  void async_handshake(asio::ssl::stream_base::handshake_type type, Handler&& handler) {
    tls_->stream.async_handshake(type,
                                 Keep<std::decay_t<Handler>>{tls_, std::forward<Handler>(handler)});
  }

  template <typename Buffers, typename Handler>
  void async_read_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) [[unlikely]] {
      tls_->stream.async_read_some(
          buffers, Keep<std::decay_t<Handler>>{tls_, std::forward<Handler>(handler)});
    } else {
      socket_.async_read_some(buffers, std::forward<Handler>(handler));
    }
  }

  template <typename Buffers, typename Handler>
  void async_write_some(const Buffers& buffers, Handler&& handler) {
    if (tls_) [[unlikely]] {
      tls_->stream.async_write_some(
          buffers, Keep<std::decay_t<Handler>>{tls_, std::forward<Handler>(handler)});
    } else {
      socket_.async_write_some(buffers, std::forward<Handler>(handler));
    }
  }

  // Bytes readable without waiting: the kernel's, plus with TLS what OpenSSL has decrypted but
  // not handed out yet (SSL_pending; undecrypted records in its buffer are not counted).
  std::size_t available(boost::system::error_code& ec) {
    std::size_t n = socket_.available(ec);
    if (tls_) n += static_cast<std::size_t>(SSL_pending(tls_->stream.native_handle()));
    return n;
  }

  // Without close_notify: the peer sees the connection end, as on a plaintext close (Redis
  // does the same). The session stays until its operations have completed.
  void close(boost::system::error_code& ec) { socket_.close(ec); }
  bool is_open() const { return socket_.is_open(); }
  tcp::endpoint remote_endpoint(boost::system::error_code& ec) const {
    return socket_.remote_endpoint(ec);
  }
  tcp::endpoint local_endpoint(boost::system::error_code& ec) const {
    return socket_.local_endpoint(ec);
  }
  template <typename Option>
  void set_option(const Option& option, boost::system::error_code& ec) {
    socket_.set_option(option, ec);
  }

 private:
  struct Session {
    Session(std::shared_ptr<asio::ssl::context> c, tcp::socket& socket)
        : context(std::move(c)), stream(socket, *context) {}
    std::shared_ptr<asio::ssl::context> context;
    asio::ssl::stream<tcp::socket&> stream;
  };

  // A handler that holds the session its operation runs on.
  template <typename Handler>
  struct Keep {
    std::shared_ptr<Session> session;
    Handler handler;
    template <typename... Args>
    void operator()(Args&&... args) {
      handler(std::forward<Args>(args)...);
    }
  };

  tcp::socket socket_;
  std::shared_ptr<Session> tls_;
};

}  // namespace respguard
