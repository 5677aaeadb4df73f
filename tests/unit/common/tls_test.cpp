#include "respguard/common/tls.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace respguard::tls {
namespace {

const std::filesystem::path kRepoRoot =
    (std::filesystem::path(__FILE__).parent_path() / "../../..").lexically_normal();

// Two sets of certificates from scripts/gen-tls-certs (two CAs), made once for the suite.
class TlsContextTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/respguard-tls-unit-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    for (const char* name : {"a", "b"}) {
      const std::string command = "'" + (kRepoRoot / "scripts/gen-tls-certs").string() + "' '" +
                                  dir_ + "/" + name + "' > /dev/null 2>&1";
      ok_ = ok_ && std::system(command.c_str()) == 0;
    }
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  void SetUp() override { ASSERT_TRUE(ok_) << "scripts/gen-tls-certs failed"; }

  static config::Config listener(const std::string& set) {
    config::Config c;
    c.tls.cert_file = dir_ + "/" + set + "/server.crt";
    c.tls.key_file = dir_ + "/" + set + "/server.key";
    return c;
  }
  static config::Config upstream(const std::string& set) {
    config::Config c;
    c.upstream.tls.enabled = true;
    c.upstream.tls.ca_file = dir_ + "/" + set + "/ca.crt";
    return c;
  }
  // The certificate a context presents.
  static X509* certificate(const ContextPtr& ctx) {
    return SSL_CTX_get0_certificate(ctx->native_handle());
  }

  static inline std::string dir_;
  static inline bool ok_ = true;
};

TEST_F(TlsContextTest, NoCertificateMeansNoContext) {
  ContextHolder holder(ContextHolder::Side::Listener, config::Config{});
  EXPECT_FALSE(holder.enabled());
  EXPECT_EQ(holder.current(), nullptr);
  EXPECT_EQ(holder.reload(config::Config{}), "");
  ContextHolder up(ContextHolder::Side::Upstream, config::Config{});
  EXPECT_EQ(up.current(), nullptr);
}

TEST_F(TlsContextTest, NothingBelowTls12) {
  const ContextPtr ctx = make_listener_context(listener("a").tls);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->native_handle()), TLS1_2_VERSION);
  const auto options = SSL_CTX_get_options(ctx->native_handle());
  EXPECT_TRUE(options & SSL_OP_NO_TLSv1);
  EXPECT_TRUE(options & SSL_OP_NO_TLSv1_1);
  EXPECT_TRUE(options & SSL_OP_NO_SSLv3);
  config::Config c = listener("a");
  c.tls.min_version = "1.3";
  EXPECT_EQ(SSL_CTX_get_min_proto_version(make_listener_context(c.tls)->native_handle()),
            TLS1_3_VERSION);
  const ContextPtr up = make_upstream_context(upstream("a").upstream.tls);
  EXPECT_EQ(SSL_CTX_get_min_proto_version(up->native_handle()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(up->native_handle()), SSL_VERIFY_PEER);
}

TEST_F(TlsContextTest, ClientCertificateModesSetTheVerifyFlags) {
  config::Config c = listener("a");
  EXPECT_EQ(SSL_CTX_get_verify_mode(make_listener_context(c.tls)->native_handle()),
            SSL_VERIFY_NONE);
  c.tls.ca_file = dir_ + "/a/ca.crt";
  c.tls.client_certs = "optional";
  EXPECT_EQ(SSL_CTX_get_verify_mode(make_listener_context(c.tls)->native_handle()),
            SSL_VERIFY_PEER);
  c.tls.client_certs = "required";
  EXPECT_EQ(SSL_CTX_get_verify_mode(make_listener_context(c.tls)->native_handle()),
            SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
}

// What SIGHUP relies on: new connections get the new certificate, connections holding the old
// context keep it intact.
TEST_F(TlsContextTest, ReloadInstallsANewContextOldHoldersKeepTheirs) {
  ContextHolder holder(ContextHolder::Side::Listener, listener("a"));
  const ContextPtr before = holder.current();
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(holder.reload(listener("b")), "");
  const ContextPtr after = holder.current();
  ASSERT_NE(after, nullptr);
  EXPECT_NE(after, before);
  EXPECT_NE(X509_cmp(certificate(before), certificate(after)), 0);
  EXPECT_EQ(holder.current(), after);  // the same context for every connection until the next
}

TEST_F(TlsContextTest, FailedReloadKeepsTheContextAndNamesTheFile) {
  ContextHolder holder(ContextHolder::Side::Listener, listener("a"));
  const ContextPtr before = holder.current();
  config::Config broken = listener("a");
  broken.tls.cert_file = dir_ + "/missing.crt";
  EXPECT_EQ(holder.reload(broken), "tls.cert_file '" + dir_ +
                                       "/missing.crt': cannot load the certificate chain: no such "
                                       "file");
  broken = listener("a");
  broken.tls.key_file = dir_ + "/b/server.key";
  EXPECT_EQ(holder.reload(broken), "tls.key_file '" + dir_ +
                                       "/b/server.key': does not match tls.cert_file '" + dir_ +
                                       "/a/server.crt'");
  EXPECT_EQ(holder.current(), before);
}

TEST_F(TlsContextTest, TurningTlsOnOrOffNeedsARestart) {
  ContextHolder off(ContextHolder::Side::Listener, config::Config{});
  EXPECT_NE(off.reload(listener("a")).find("needs a restart"), std::string::npos);
  EXPECT_EQ(off.current(), nullptr);
  ContextHolder on(ContextHolder::Side::Upstream, upstream("a"));
  EXPECT_NE(on.reload(config::Config{}).find("needs a restart"), std::string::npos);
  EXPECT_NE(on.current(), nullptr);
}

TEST_F(TlsContextTest, ContextsReloadBothOrNeither) {
  config::Config c = listener("a");
  c.upstream.tls = upstream("a").upstream.tls;
  Contexts contexts(c);
  const ContextPtr listener_before = contexts.listener.current();
  const ContextPtr upstream_before = contexts.upstream.current();
  config::Config next = listener("b");
  next.upstream.tls = upstream("b").upstream.tls;
  next.upstream.tls.ca_file = dir_ + "/b/missing-ca.crt";
  EXPECT_EQ(contexts.reload(next), "upstream.tls.ca_file '" + dir_ +
                                       "/b/missing-ca.crt': cannot load the CA certificates: no "
                                       "such file");
  EXPECT_EQ(contexts.listener.current(), listener_before);
  EXPECT_EQ(contexts.upstream.current(), upstream_before);
  next.upstream.tls.ca_file = dir_ + "/b/ca.crt";
  EXPECT_EQ(contexts.reload(next), "");
  EXPECT_NE(contexts.listener.current(), listener_before);
  EXPECT_NE(contexts.upstream.current(), upstream_before);
}

TEST_F(TlsContextTest, BadCipherListIsNamed) {
  config::Config c = listener("a");
  c.tls.ciphers = "NO-SUCH-CIPHER";
  try {
    make_listener_context(c.tls);
    FAIL() << "no error";
  } catch (const TlsError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("tls.ciphers 'NO-SUCH-CIPHER': ", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace respguard::tls
