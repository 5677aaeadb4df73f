// SHA-256 (FIPS 180-4), for the client passwords of the `auth:` section: they are stored as the
// hex digest, as Redis's ACL stores `#<hash>` passwords. Pure; no dependency beyond the standard
// library. Not for bulk data: it is written for clarity, hashing a password per AUTH.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace respguard::common {

using Sha256Digest = std::array<std::uint8_t, 32>;

Sha256Digest sha256(std::string_view data);

// 64 lower-case hex digits.
std::string sha256_hex(std::string_view data);
std::string to_hex(const Sha256Digest& digest);

// The digest written as 64 hex digits (either case); false when `hex` is not one.
bool parse_sha256_hex(std::string_view hex, Sha256Digest& out);

// Equality that takes the same time wherever the digests differ.
bool digest_equal(const Sha256Digest& a, const Sha256Digest& b);

}  // namespace respguard::common
