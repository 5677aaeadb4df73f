#include "respguard/common/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <filesystem>

namespace respguard::tls {
namespace {

// "tls.cert_file '/etc/respguard/server.crt': cannot load the certificate chain: <reason>".
[[noreturn]] void fail(std::string_view option, const std::string& file, std::string_view what,
                       const boost::system::error_code& ec) {
  std::string reason = ec ? ec.message() : std::string("unknown error");
  std::error_code fs_ec;
  if (!std::filesystem::exists(file, fs_ec)) reason = "no such file";
  throw TlsError(std::string(option) + " '" + file + "': " + std::string(what) + ": " + reason);
}

// The OpenSSL error queue's oldest entry, for calls made on the raw handles.
std::string openssl_reason() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : "error " + std::to_string(code);
}

// TLS 1.2 at least, whatever OpenSSL's defaults or an old system policy say: SSLv2/3 and TLS
// 1.0/1.1 are off by option and by protocol floor. No TLS-level compression (CRIME).
void harden(ssl::context& ctx, bool tls13_only) {
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
}

void load_key_pair(ssl::context& ctx, std::string_view prefix, const std::string& cert,
                   const std::string& key) {
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(cert, ec);
  if (ec) fail(std::string(prefix) + "cert_file", cert, "cannot load the certificate chain", ec);
  ctx.use_private_key_file(key, ssl::context::pem, ec);
  const bool mismatch =
      ec && ec.category() == asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned int>(ec.value())) == X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) {
    fail(std::string(prefix) + "key_file", key, "cannot load the private key", ec);
  }
  if (mismatch || SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    throw TlsError(std::string(prefix) + "key_file '" + key + "': does not match " +
                   std::string(prefix) + "cert_file '" + cert + "'");
  }
}

bool is_ip_address(const std::string& name) {
  boost::system::error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

}  // namespace

ContextPtr make_listener_context(const config::TlsConfig& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  harden(*ctx, tls.min_version == "1.3");
  if (!tls.ciphers.empty() &&
      SSL_CTX_set_cipher_list(ctx->native_handle(), tls.ciphers.c_str()) != 1) {
    throw TlsError("tls.ciphers '" + tls.ciphers + "': " + openssl_reason());
  }
  load_key_pair(*ctx, "tls.", tls.cert_file, tls.key_file);
  if (tls.client_certs != "none") {
    boost::system::error_code ec;
    ctx->load_verify_file(tls.ca_file, ec);
    if (ec) fail("tls.ca_file", tls.ca_file, "cannot load the CA certificates", ec);
    // Tell clients which CAs we accept, so one with several certificates picks the right one.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(ctx->native_handle(), names);
    }
    ssl::verify_mode mode = ssl::verify_peer;
    if (tls.client_certs == "required") mode |= ssl::verify_fail_if_no_peer_cert;
    ctx->set_verify_mode(mode);
    // Resumed sessions keep their verified client: OpenSSL refuses to resume one without a
    // session id context once peers are verified.
    static constexpr unsigned char kSessionContext[] = "respguard";
    SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionContext,
                                   sizeof kSessionContext - 1);
  }
  return ctx;
}

ContextPtr make_upstream_context(const config::UpstreamTlsConfig& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  harden(*ctx, false);
  boost::system::error_code ec;
  if (tls.verify) {
    if (tls.ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
      if (ec) throw TlsError("upstream.tls.ca_file: cannot load the system's CAs: " + ec.message());
    } else {
      ctx->load_verify_file(tls.ca_file, ec);
      if (ec) fail("upstream.tls.ca_file", tls.ca_file, "cannot load the CA certificates", ec);
    }
    ctx->set_verify_mode(ssl::verify_peer);
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  if (!tls.cert_file.empty()) load_key_pair(*ctx, "upstream.tls.", tls.cert_file, tls.key_file);
  return ctx;
}

void set_upstream_peer(SSL* ssl, const std::string& name, bool verify) {
  if (is_ip_address(name)) {
    if (verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    return;
  }
  SSL_set_tlsext_host_name(ssl, name.c_str());
  if (verify) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_set1_host(ssl, name.c_str());
  }
}

std::string describe(const boost::system::error_code& ec, SSL* ssl) {
  if (ec == ssl::error::stream_truncated || ec == asio::error::eof) {
    return "connection closed during the handshake";
  }
  std::string text = ec.message();
  if (ssl != nullptr) {
    if (const long result = SSL_get_verify_result(ssl); result != X509_V_OK) {
      text += std::string(" (") + X509_verify_cert_error_string(result) + ")";
    }
  }
  return text;
}

FailureKind classify(const boost::system::error_code& ec) {
  if (ec == ssl::error::stream_truncated || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::broken_pipe) {
    return FailureKind::Closed;
  }
  if (ec.category() != asio::error::get_ssl_category()) return FailureKind::Other;
  switch (ERR_GET_REASON(static_cast<unsigned long>(static_cast<unsigned int>(ec.value())))) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_NO_CERTIFICATES_RETURNED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return FailureKind::Certificate;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_UNKNOWN_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_RECORD_LENGTH_MISMATCH:
      return FailureKind::Protocol;
    default:
      return FailureKind::Other;
  }
}

// ContextHolder ------------------------------------------------------------------------------

ContextHolder::ContextHolder(Side side, const config::Config& config)
    : side_(side),
      enabled_(side == Side::Listener ? config.tls.enabled() : config.upstream.tls.enabled),
      current_(build(config)) {}

ContextPtr ContextHolder::build(const config::Config& config) const {
  if (side_ == Side::Listener) {
    if (config.tls.enabled() != enabled_) {
      throw TlsError(
          "tls.cert_file: turning TLS on the listener on or off needs a restart (clients would "
          "find the port speaking another protocol)");
    }
    return enabled_ ? make_listener_context(config.tls) : nullptr;
  }
  if (config.upstream.tls.enabled != enabled_) {
    throw TlsError("upstream.tls.enabled: turning TLS to the upstream on or off needs a restart");
  }
  return enabled_ ? make_upstream_context(config.upstream.tls) : nullptr;
}

void ContextHolder::install(ContextPtr context) {
  std::lock_guard lock(mu_);
  current_.swap(context);
  // The old context is released outside the lock, once its last connection is gone.
}

std::string ContextHolder::reload(const config::Config& config) {
  try {
    install(build(config));
  } catch (const TlsError& e) {
    return e.what();
  }
  return {};
}

std::string Contexts::reload(const config::Config& config) {
  ContextPtr next_listener;
  ContextPtr next_upstream;
  try {
    next_listener = listener.build(config);
    next_upstream = upstream.build(config);
  } catch (const TlsError& e) {
    return e.what();
  }
  listener.install(std::move(next_listener));
  upstream.install(std::move(next_upstream));
  return {};
}

}  // namespace respguard::tls
