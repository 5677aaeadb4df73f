#include "respguard/common/sha256.hpp"

#include <gtest/gtest.h>

#include <string>

namespace respguard::common {
namespace {

// FIPS 180-2, appendix B (and the empty message, as every implementation lists it).
TEST(Sha256, Fips180Vectors) {
  EXPECT_EQ(sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, OneMillionA) {
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the block and padding boundaries (55, 56, 63, 64, 65 bytes), against digests
// from `sha256sum`.
TEST(Sha256, PaddingBoundaries) {
  EXPECT_EQ(sha256_hex(std::string(55, 'a')),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(sha256_hex(std::string(56, 'a')),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(sha256_hex(std::string(64, 'a')),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST(Sha256, RedisAclHashOfAPassword) {
  // What Redis's ACL GETUSER shows for `>app-secret`, and respguard --hash-password prints.
  EXPECT_EQ(sha256_hex("app-secret").size(), 64u);
  EXPECT_EQ(sha256_hex("x"), "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
}

TEST(Sha256, ParseHexAndCompare) {
  Sha256Digest d{};
  ASSERT_TRUE(parse_sha256_hex(
      "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", d));
  EXPECT_TRUE(digest_equal(d, sha256("abc")));
  EXPECT_FALSE(digest_equal(d, sha256("abd")));
  EXPECT_EQ(to_hex(d), sha256_hex("abc"));
  EXPECT_FALSE(parse_sha256_hex("abc", d));
  EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a') + "g", d));
}

}  // namespace
}  // namespace respguard::common
