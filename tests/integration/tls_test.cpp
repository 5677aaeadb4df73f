// TLS on the client listener and to the upstream (docs/security.md, "TLS"). Certificates are
// made per suite by scripts/gen-tls-certs (the openssl CLI) in a temp dir: CA "a" signs the
// proxy's and Redis's certificates and the good client's; CA "b" signs a client certificate
// the proxy must refuse. Clients are redis-cli --tls and a small OpenSSL client below, which
// can leave out its certificate or force an old protocol version.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.hpp"

namespace rgtest {
namespace {

const std::filesystem::path kRepoRoot =
    (std::filesystem::path(__FILE__).parent_path() / "../..").lexically_normal();

// Runs a shell command; its stdout and stderr, and *status its exit status.
std::string shell(const std::string& command, int* status = nullptr) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return "(popen failed)";
  std::string output;
  char chunk[4096];
  while (std::size_t n = std::fread(chunk, 1, sizeof chunk, pipe)) output.append(chunk, n);
  const int rc = ::pclose(pipe);
  if (status != nullptr) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

// redis-cli over TLS (bounded by timeout(1)); `tls_args` are --cacert/--cert/--key.
std::string redis_cli_tls(int port, const std::vector<std::string>& tls_args,
                          const std::vector<std::string>& args) {
  std::string command = "timeout 10 redis-cli --tls -h 127.0.0.1 -p " + std::to_string(port);
  for (const std::string& a : tls_args) command += " '" + a + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  return shell(command);
}

// "calls" of one command in INFO commandstats text ("cmdstat_get:calls=3,usec=..."); 0 if none.
long long calls_in(const std::string& info, const std::string& command) {
  const std::string prefix = "cmdstat_" + command + ":calls=";
  const std::size_t at = info.find(prefix);
  if (at == std::string::npos) return 0;
  return std::stoll(info.substr(at + prefix.size()));
}

// The suite's certificates: two CAs' worth from scripts/gen-tls-certs.
struct Certs {
  std::string dir;
  std::string a;  // ca.crt, server.*, client.* of CA a (trusted)
  std::string b;  // CA b: its client certificate is "from another CA"
  std::string error;

  Certs() : dir(make_temp_dir()), a(dir + "/a"), b(dir + "/b") {
    const std::string script = (kRepoRoot / "scripts/gen-tls-certs").string();
    for (const std::string& d : {a, b}) {
      int status = -1;
      std::string out = shell("'" + script + "' '" + d + "'", &status);
      if (status != 0) error += out + "\n";
    }
  }
  ~Certs() {
    std::error_code ignored;
    if (error.empty()) std::filesystem::remove_all(dir, ignored);
  }
};

// A blocking OpenSSL client with 5 s socket timeouts, so nothing waits unbounded.
class TlsClient {
 public:
  struct Options {
    std::string ca;
    std::string cert;  // empty: no client certificate
    std::string key;
    int max_version = 0;  // e.g. TLS1_1_VERSION; 0 = OpenSSL's
    int min_version = 0;
  };

  TlsClient(int port, const Options& o) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (o.max_version != 0) {
      // OpenSSL 3 allows nothing below TLS 1.2 at its default security level.
      SSL_CTX_set_security_level(ctx_, 0);
      SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
      SSL_CTX_set_min_proto_version(ctx_, o.min_version);
      SSL_CTX_set_max_proto_version(ctx_, o.max_version);
    }
    SSL_CTX_load_verify_locations(ctx_, o.ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (!o.cert.empty()) {
      SSL_CTX_use_certificate_chain_file(ctx_, o.cert.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, o.key.c_str(), SSL_FILETYPE_PEM);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      error_ = "connect failed";
      return;
    }
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    SSL_set1_host(ssl_, "127.0.0.1");
    if (SSL_connect(ssl_) == 1) {
      handshake_ok_ = true;
    } else {
      error_ = last_error();
    }
  }
  ~TlsClient() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (fd_ >= 0) ::close(fd_);
    SSL_CTX_free(ctx_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool handshake_ok() const { return handshake_ok_; }
  const std::string& error() const { return error_; }

  // Sends one command, returns its reply's raw bytes; "" when the connection failed or closed
  // (with TLS 1.3 a refused client certificate shows up here, after the client's handshake).
  std::string command(const std::vector<std::string>& args) {
    if (!handshake_ok_) return "";
    std::string request = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args)
      request += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    if (SSL_write(ssl_, request.data(), static_cast<int>(request.size())) <= 0) {
      error_ = last_error();
      return "";
    }
    std::string reply;
    char chunk[4096];
    while (resp_message_size(reply) == 0) {
      const int n = SSL_read(ssl_, chunk, sizeof chunk);
      if (n <= 0) {
        error_ = last_error();
        return "";
      }
      reply.append(chunk, static_cast<std::size_t>(n));
    }
    return reply;
  }

  // The server certificate's subject ("CN = respguard").
  std::string peer_subject() const {
    X509* cert = SSL_get1_peer_certificate(ssl_);
    if (cert == nullptr) return "";
    char buf[256];
    X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
    X509_free(cert);
    return buf;
  }
  std::string version() const { return ssl_ ? SSL_get_version(ssl_) : ""; }

 private:
  static std::string last_error() {
    std::string text;
    while (unsigned long code = ERR_get_error()) {
      char buf[256];
      ERR_error_string_n(code, buf, sizeof buf);
      if (!text.empty()) text += "; ";
      text += buf;
    }
    return text.empty() ? "connection closed" : text;
  }

  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool handshake_ok_ = false;
  std::string error_;
};

std::string listener_yaml(const Certs& c, const std::string& client_certs = "none") {
  std::string yaml = "tls:\n  cert_file: " + c.a + "/server.crt\n  key_file: " + c.a +
                     "/server.key\n  client_certs: " + client_certs + "\n";
  if (client_certs != "none") yaml += "  ca_file: " + c.a + "/ca.crt\n";
  return yaml;
}

const std::string kClientFailure =
    "respguard_tls_handshake_failures_total{side=\"client\",reason=\"";

double client_failures(const ProxyServer& proxy, const std::string& reason) {
  return metric(proxy, kClientFailure + reason + "\"}");
}

class TlsListener : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = std::make_unique<Certs>();
    redis_ = std::make_unique<RedisServer>();
  }
  static void TearDownTestSuite() {
    redis_.reset();
    certs_.reset();
  }
  void SetUp() override {
    SKIP_IN_DIRECT_MODE("TLS is respguard's listener");
    ASSERT_TRUE(certs_->error.empty()) << certs_->error;
  }
  std::unique_ptr<ProxyServer> start_proxy(const std::string& client_certs = "none") {
    ProxyOptions o;
    o.config_yaml = listener_yaml(*certs_, client_certs);
    o.tls_listener = true;
    return std::make_unique<ProxyServer>(redis_->port(), o);
  }
  TlsClient::Options good_client() const {
    return {certs_->a + "/ca.crt", certs_->a + "/client.crt", certs_->a + "/client.key"};
  }

  static inline std::unique_ptr<Certs> certs_;
  static inline std::unique_ptr<RedisServer> redis_;
};

TEST_F(TlsListener, RedisCliRoundTrip) {
  auto proxy = start_proxy();
  const std::vector<std::string> tls = {"--cacert", certs_->a + "/ca.crt"};
  const long long sets = commandstat_calls(redis_->port(), "set");
  const long long gets = commandstat_calls(redis_->port(), "get");
  EXPECT_EQ(redis_cli_tls(proxy->port(), tls, {"SET", "tls:k", "encrypted"}), "OK");
  EXPECT_EQ(redis_cli_tls(proxy->port(), tls, {"GET", "tls:k"}), "encrypted");
  // The commands went through to Redis (plaintext upstream here).
  EXPECT_EQ(commandstat_calls(redis_->port(), "set"), sets + 1);
  EXPECT_EQ(commandstat_calls(redis_->port(), "get"), gets + 1);
  TlsClient client(proxy->port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(client.handshake_ok()) << client.error();
  EXPECT_EQ(client.peer_subject(), "/CN=respguard");
  EXPECT_EQ(client.command({"GET", "tls:k"}), "$9\r\nencrypted\r\n");
  // redis-cli that does not trust our CA refuses the proxy: the certificate is checked.
  const std::string untrusted =
      redis_cli_tls(proxy->port(), {"--cacert", certs_->b + "/ca.crt"}, {"PING"});
  EXPECT_NE(untrusted, "PONG");
  EXPECT_EQ(client_failures(*proxy, "timeout"), 0);
}

TEST_F(TlsListener, RequiredClientCertificateRefusesMissingAndForeignOnes) {
  auto proxy = start_proxy("required");
  // No certificate. With TLS 1.3 the client's side of the handshake may complete before the
  // proxy checks; either way no command is answered and the connection ends.
  {
    TlsClient none(proxy->port(), {certs_->a + "/ca.crt"});
    EXPECT_EQ(none.command({"PING"}), "") << "no certificate, yet answered";
  }
  EXPECT_EQ(metric_reaches(*proxy, kClientFailure + "certificate\"}", 1), 1);
  // A certificate signed by another CA.
  {
    TlsClient foreign(proxy->port(), {certs_->a + "/ca.crt", certs_->b + "/client.crt",
                                      certs_->b + "/client.key"});
    EXPECT_EQ(foreign.command({"PING"}), "") << "foreign certificate, yet answered";
  }
  EXPECT_EQ(metric_reaches(*proxy, kClientFailure + "certificate\"}", 2), 2);
  EXPECT_EQ(metric(*proxy, "respguard_client_connections_closed_total{reason=\"tls_handshake\"}"),
            2);
  // The right one.
  TlsClient good(proxy->port(), good_client());
  ASSERT_TRUE(good.handshake_ok()) << good.error();
  EXPECT_EQ(good.command({"PING"}), "+PONG\r\n");
  EXPECT_EQ(redis_cli_tls(proxy->port(),
                          {"--cacert", certs_->a + "/ca.crt", "--cert", certs_->a + "/client.crt",
                           "--key", certs_->a + "/client.key"},
                          {"PING"}),
            "PONG");
  EXPECT_EQ(client_failures(*proxy, "certificate"), 2);
}

TEST_F(TlsListener, OptionalClientCertificateAcceptsNoneButChecksOneSent) {
  auto proxy = start_proxy("optional");
  TlsClient none(proxy->port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(none.handshake_ok()) << none.error();
  EXPECT_EQ(none.command({"PING"}), "+PONG\r\n");
  TlsClient foreign(proxy->port(),
                    {certs_->a + "/ca.crt", certs_->b + "/client.crt", certs_->b + "/client.key"});
  EXPECT_EQ(foreign.command({"PING"}), "");
  EXPECT_EQ(metric_reaches(*proxy, kClientFailure + "certificate\"}", 1), 1);
}

TEST_F(TlsListener, PlaintextClientIsRefusedOthersKeepWorking) {
  auto proxy = start_proxy();
  TlsClient before(proxy->port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(before.handshake_ok()) << before.error();
  EXPECT_EQ(before.command({"SET", "tls:plain", "1"}), "+OK\r\n");
  for (int i = 0; i < 3; ++i) {
    RawSocket plain(proxy->port());
    ASSERT_TRUE(plain.connected());
    plain.send("*1\r\n$4\r\nPING\r\n");
    EXPECT_TRUE(plain.wait_closed(5s)) << "plaintext client not disconnected";
  }
  // hiredis and redis-cli without --tls: no reply, and the proxy is fine.
  EXPECT_NE(redis_cli(proxy->port(), {"PING"}), "PONG");
  EXPECT_GE(metric_reaches(*proxy, kClientFailure + "protocol\"}", 4), 4);
  EXPECT_EQ(before.command({"GET", "tls:plain"}), "$1\r\n1\r\n");
  TlsClient after(proxy->port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(after.handshake_ok()) << after.error();
  EXPECT_EQ(after.command({"PING"}), "+PONG\r\n");
}

TEST_F(TlsListener, ProtocolsBelowTls12AreRefused) {
  auto proxy = start_proxy();
  const double refused = client_failures(*proxy, "protocol");
  TlsClient old(
      proxy->port(),
      {.ca = certs_->a + "/ca.crt", .max_version = TLS1_1_VERSION, .min_version = TLS1_VERSION});
  EXPECT_FALSE(old.handshake_ok()) << "negotiated " << old.version();
  // Only a refusal by the proxy counts: the client's hello must have reached it. An OpenSSL
  // that cannot even build a TLS 1.1 hello proves nothing, and says so.
  if (old.error().find("no protocols available") != std::string::npos) {
    GTEST_SKIP() << "this OpenSSL cannot offer TLS 1.1 at all (" << old.error()
                 << "); the proxy's refusal is unproven here";
  }
  EXPECT_EQ(metric_reaches(*proxy, kClientFailure + "protocol\"}", refused + 1), refused + 1)
      << "client error: " << old.error();
  TlsClient tls12(
      proxy->port(),
      {.ca = certs_->a + "/ca.crt", .max_version = TLS1_2_VERSION, .min_version = TLS1_2_VERSION});
  ASSERT_TRUE(tls12.handshake_ok()) << tls12.error();
  EXPECT_EQ(tls12.version(), "TLSv1.2");
  EXPECT_EQ(tls12.command({"PING"}), "+PONG\r\n");
}

TEST_F(TlsListener, MinVersion13RefusesTls12) {
  ProxyOptions o;
  o.config_yaml = listener_yaml(*certs_) + "  min_version: \"1.3\"\n";
  o.tls_listener = true;
  ProxyServer proxy(redis_->port(), o);
  TlsClient tls12(
      proxy.port(),
      {.ca = certs_->a + "/ca.crt", .max_version = TLS1_2_VERSION, .min_version = TLS1_2_VERSION});
  EXPECT_FALSE(tls12.handshake_ok());
  EXPECT_EQ(metric_reaches(proxy, kClientFailure + "protocol\"}", 1), 1) << tls12.error();
  TlsClient tls13(proxy.port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(tls13.handshake_ok()) << tls13.error();
  EXPECT_EQ(tls13.version(), "TLSv1.3");
}

TEST_F(TlsListener, BadCertificateFilesStopStartupNamingTheFile) {
  const std::string missing = certs_->dir + "/nope.crt";
  int status = -1;
  const std::string out =
      shell("printf 'tls:\\n  cert_file: " + missing + "\\n  key_file: " + certs_->a +
                "/server.key\\n' > " + certs_->dir + "/bad.yaml && timeout 10 " + RESPGUARD_BINARY +
                " --config " + certs_->dir + "/bad.yaml --listen 127.0.0.1:" +
                std::to_string(free_port()) + " --admin 127.0.0.1:" + std::to_string(free_port()),
            &status);
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("tls.cert_file '" + missing + "': cannot load the certificate chain"),
            std::string::npos)
      << out;
  // A key that is not the certificate's.
  const std::string mismatch =
      shell("printf 'tls:\\n  cert_file: " + certs_->a + "/server.crt\\n  key_file: " + certs_->a +
                "/client.key\\n' > " + certs_->dir + "/bad2.yaml && timeout 10 " +
                RESPGUARD_BINARY + " --config " + certs_->dir + "/bad2.yaml --listen 127.0.0.1:" +
                std::to_string(free_port()) + " --admin 127.0.0.1:" + std::to_string(free_port()),
            &status);
  EXPECT_EQ(status, 1) << mismatch;
  EXPECT_NE(mismatch.find("tls.key_file '" + certs_->a + "/client.key': does not match"),
            std::string::npos)
      << mismatch;
}

// Certificates are re-read on SIGHUP: new connections get the new one, a connection made
// before keeps working; a reload whose files do not load changes nothing.
TEST_F(TlsListener, SighupReloadsCertificatesForNewConnectionsOnly) {
  const std::string dir = certs_->dir + "/reload";
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(certs_->a + "/server.crt", dir + "/server.crt");
  std::filesystem::copy_file(certs_->a + "/server.key", dir + "/server.key");
  ProxyOptions o;
  o.config_yaml = "tls:\n  cert_file: " + dir + "/server.crt\n  key_file: " + dir + "/server.key\n";
  o.tls_listener = true;
  ProxyServer proxy(redis_->port(), o);
  TlsClient before(proxy.port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(before.handshake_ok()) << before.error();
  EXPECT_EQ(before.peer_subject(), "/CN=respguard");
  EXPECT_EQ(before.command({"PING"}), "+PONG\r\n");

  // A new certificate from the same CA, replacing the files in place (renamed over them).
  int status = -1;
  const std::string out =
      shell("cd '" + dir +
                "' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ext && "
                "openssl req -new -newkey rsa:2048 -nodes -keyout new.key -out new.csr "
                "-subj '/CN=respguard reloaded' && openssl x509 -req -in new.csr -CA '" +
                certs_->a + "/ca.crt' -CAkey '" + certs_->a +
                "/ca.key' -CAcreateserial -days 30 -out new.crt "
                "-extfile ext && mv new.key server.key && mv new.crt server.crt",
            &status);
  ASSERT_EQ(status, 0) << out;
  proxy.signal(SIGHUP);
  const std::string success = "respguard_config_reloads_total{result=\"success\"}";
  ASSERT_EQ(metric_becomes(proxy, success, 1), 1);
  TlsClient after(proxy.port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(after.handshake_ok()) << after.error();
  EXPECT_EQ(after.peer_subject(), "/CN=respguard reloaded");
  EXPECT_EQ(after.command({"PING"}), "+PONG\r\n");
  EXPECT_EQ(before.command({"PING"}), "+PONG\r\n");  // the old connection goes on
  EXPECT_EQ(before.peer_subject(), "/CN=respguard");

  // A key that does not match the certificate: the reload fails, the last good one stays.
  std::filesystem::copy_file(certs_->a + "/client.key", dir + "/server.key",
                             std::filesystem::copy_options::overwrite_existing);
  proxy.signal(SIGHUP);
  const std::string failure = "respguard_config_reloads_total{result=\"failure\"}";
  ASSERT_EQ(metric_becomes(proxy, failure, 1), 1);
  EXPECT_NE(proxy.log().find("tls.key_file '" + dir + "/server.key': does not match"),
            std::string::npos);
  TlsClient third(proxy.port(), {certs_->a + "/ca.crt"});
  ASSERT_TRUE(third.handshake_ok()) << third.error();
  EXPECT_EQ(third.peer_subject(), "/CN=respguard reloaded");
}

// ---- upstream ----

// redis-server with only a TLS port (--port 0), its certificate from CA a; `auth_clients`
// "yes" wants a client certificate (mutual TLS).
class TlsRedis {
 public:
  TlsRedis(const Certs& certs, const std::string& auth_clients) : certs_(certs) {
    dir_ = make_temp_dir();
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      process_.start({REDIS_SERVER_BINARY,
                      "--port",
                      "0",
                      "--tls-port",
                      std::to_string(port_),
                      "--bind",
                      "127.0.0.1",
                      "--save",
                      "",
                      "--appendonly",
                      "no",
                      "--dir",
                      dir_,
                      "--tls-cert-file",
                      certs.a + "/server.crt",
                      "--tls-key-file",
                      certs.a + "/server.key",
                      "--tls-ca-cert-file",
                      certs.a + "/ca.crt",
                      "--tls-auth-clients",
                      auth_clients},
                     dir_ + "/redis.log");
      if (wait_until([this] { return !process_.running() || cli({"PING"}) == "PONG"; }, 5000ms) &&
          process_.running()) {
        return;
      }
      process_.kill();
    }
    throw std::runtime_error("redis-server --tls-port did not start");
  }
  ~TlsRedis() {
    process_.kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  int port() const { return port_; }
  // redis-cli over TLS with the good client certificate, straight to Redis.
  std::string cli(const std::vector<std::string>& args) const {
    return redis_cli_tls(port_,
                         {"--cacert", certs_.a + "/ca.crt", "--cert", certs_.a + "/client.crt",
                          "--key", certs_.a + "/client.key"},
                         args);
  }
  long long calls(const std::string& command) const {
    return calls_in(cli({"INFO", "commandstats"}), command);
  }

 private:
  const Certs& certs_;
  std::string dir_;
  int port_ = 0;
  ChildProcess process_;
};

std::string upstream_yaml(const Certs& c, const std::string& ca_dir, bool client_cert) {
  std::string yaml = "upstream:\n  tls:\n    enabled: true\n    ca_file: " + ca_dir + "/ca.crt\n";
  if (client_cert) {
    yaml += "    cert_file: " + c.a + "/client.crt\n    key_file: " + c.a + "/client.key\n";
  }
  return yaml;
}

class TlsUpstream : public TlsListener {};

TEST_F(TlsUpstream, MutualTlsCarriesCommandsHealthChecksIncluded) {
  TlsRedis redis(*certs_, "yes");
  ProxyOptions o;
  // A negative-cache rule brings up the coherence channel, also over TLS.
  o.config_yaml = upstream_yaml(*certs_, certs_->a, true) +
                  "health_check:\n  interval: 100ms\nrules:\n  - match: \"neg:*\"\n"
                  "    negative_cache:\n      ttl: 1m\n";
  ProxyServer proxy(redis.port(), o);  // address 127.0.0.1: verified against the IP SAN
  Client client(proxy.port());
  ASSERT_TRUE(client.connected()) << client.error();
  const long long sets = redis.calls("set");
  const long long gets = redis.calls("get");
  EXPECT_EQ(client.run({"SET", "tls:up", "v1"}), "+OK");
  EXPECT_EQ(client.run({"GET", "tls:up"}), "$v1");
  EXPECT_EQ(redis.calls("set"), sets + 1);
  EXPECT_EQ(redis.calls("get"), gets + 1);
  EXPECT_EQ(redis.cli({"GET", "tls:up"}), "v1");
  // The health checker's PINGs arrive over TLS too, and every worker has a ready connection.
  const long long pings = redis.calls("ping");
  EXPECT_TRUE(wait_until([&] { return redis.calls("ping") >= pings + 3; }, 5000ms));
  // /readyz waits for the coherence channel as well as every worker's connection.
  EXPECT_TRUE(
      wait_until([&] { return http_status(proxy.admin_port(), "/readyz") == 200; }, 5000ms));
  // A direct write reaches the proxy's negative cache through the channel: the nil it learnt is
  // dropped and the value read.
  EXPECT_EQ(client.run({"GET", "neg:k"}), "(nil)");
  EXPECT_EQ(client.run({"GET", "neg:k"}), "(nil)");
  EXPECT_GE(metric(proxy, "respguard_negative_cache_hits_total"), 1);  // the nil was learnt
  EXPECT_EQ(redis.cli({"SET", "neg:k", "direct"}), "OK");
  EXPECT_TRUE(wait_until([&] { return client.run({"GET", "neg:k"}) == "$direct"; }, 5000ms));
  EXPECT_EQ(metric(proxy,
                   "respguard_tls_handshake_failures_total{side=\"upstream\",reason="
                   "\"certificate\"}"),
            0);
}

TEST_F(TlsUpstream, ServerOnlyTlsWithoutClientCertificate) {
  TlsRedis redis(*certs_, "no");
  ProxyOptions o;
  o.config_yaml = upstream_yaml(*certs_, certs_->a, false);
  ProxyServer proxy(redis.port(), o);
  Client client(proxy.port());
  EXPECT_EQ(client.run({"SET", "tls:one-way", "x"}), "+OK");
  EXPECT_EQ(redis.cli({"GET", "tls:one-way"}), "x");
}

TEST_F(TlsUpstream, UntrustedUpstreamCertificateIsRefused) {
  TlsRedis redis(*certs_, "no");
  ProxyOptions o;
  o.config_yaml = upstream_yaml(*certs_, certs_->b, false);  // trusts CA b only
  ProxyServer proxy(redis.port(), o);
  EXPECT_GE(metric_reaches(proxy,
                           "respguard_tls_handshake_failures_total{side=\"upstream\",reason="
                           "\"certificate\"}",
                           1),
            1);
  Client client(proxy.port());
  EXPECT_EQ(client.run({"SET", "tls:untrusted", "x"}).substr(0, 1), "-");
  EXPECT_EQ(redis.calls("set"), 0);
  EXPECT_NE(proxy.log().find("certificate verify failed"), std::string::npos);
}

}  // namespace
}  // namespace rgtest
