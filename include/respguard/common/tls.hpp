// TLS contexts (Boost.Asio SSL over OpenSSL) built from the config: one for the client listener
// (tls.*), one for upstream connections (upstream.tls.*). Each lives in a holder that a reload
// (SIGHUP) can swap: a connection takes the current context once, when it is accepted or
// connects, and keeps it for its life, so certificates change for new connections only and
// nothing on the request path ever takes the holder's lock.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>

#include "respguard/common/asio.hpp"

#include <boost/asio/ssl.hpp>

#include "respguard/config/config.hpp"

namespace respguard::tls {

namespace ssl = boost::asio::ssl;
using ContextPtr = std::shared_ptr<ssl::context>;

// A context could not be built: names the option, the file and OpenSSL's reason, e.g.
// "tls.key_file '/etc/respguard/server.key': cannot load the private key: no such file".
class TlsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The listener's context: certificate and key, TLS 1.2 or tls.min_version at least, client
// certificates checked against tls.ca_file as tls.client_certs says. Throws TlsError.
ContextPtr make_listener_context(const config::TlsConfig& tls);
// The upstream's: the server certificate verified against upstream.tls.ca_file (or the system's
// CAs), a client certificate for mutual TLS when configured. Throws TlsError.
ContextPtr make_upstream_context(const config::UpstreamTlsConfig& tls);

// Sets SNI and the name the upstream's certificate must carry on a new connection's SSL object:
// `name` is a DNS name (sent as SNI, checked as a host name) or an IP address (checked as one;
// SNI takes no addresses). `verify` false checks no name.
void set_upstream_peer(SSL* ssl, const std::string& name, bool verify);

// Why a handshake failed, in OpenSSL's words ("certificate verify failed", "wrong version
// number", "peer did not return a certificate"); with `ssl`, also why a certificate was not
// trusted ("unable to get local issuer certificate", "hostname mismatch").
std::string describe(const boost::system::error_code& ec, SSL* ssl = nullptr);

// The label a failed handshake is counted under (observability::TlsFailure).
enum class FailureKind : std::uint8_t { Timeout, Certificate, Protocol, Closed, Other };
FailureKind classify(const boost::system::error_code& ec);

class ContextHolder {
 public:
  enum class Side : std::uint8_t { Listener, Upstream };
  // Builds the first context when the side has TLS on (throws TlsError); otherwise holds none.
  ContextHolder(Side side, const config::Config& config);

  bool enabled() const { return enabled_; }
  // The context for a new connection; null when TLS is off. Take it once per connection.
  ContextPtr current() const {
    std::lock_guard lock(mu_);
    return current_;
  }
  // Builds a context from `config` and makes it current: "" on success; otherwise the reason,
  // and the old context stays. Turning TLS on or off needs a restart (the listener's protocol
  // would change under its clients).
  std::string reload(const config::Config& config);

  // What reload() would install, without installing it: the new context (null when TLS is off)
  // or TlsError. Exposed so a caller can build several before swapping any.
  ContextPtr build(const config::Config& config) const;
  void install(ContextPtr context);

 private:
  Side side_;
  bool enabled_;
  mutable std::mutex mu_;
  ContextPtr current_;
};

// Both holders. The server calls reload() on SIGHUP with the new config.
struct Contexts {
  explicit Contexts(const config::Config& config)
      : listener(ContextHolder::Side::Listener, config),
        upstream(ContextHolder::Side::Upstream, config) {}
  ContextHolder listener;  // tls.*: accepted client connections
  ContextHolder upstream;  // upstream.tls.*: pool, health checks, coherence channel
  // Rebuilds both from `config`'s files; swaps both or, on any error, neither. "" on success,
  // else the reason (naming the option and the file).
  std::string reload(const config::Config& config);
};

}  // namespace respguard::tls
