// TTL jitter: spreads the expirations of keys written together (cache avalanche). Pure.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "respguard/config/config.hpp"
#include "respguard/policy/random.hpp"

namespace respguard::policy {

// For SET .. EX|PX, SETEX, PSETEX, GETEX EX|PX (and EXPIRE/PEXPIRE when
// jitter.expire_commands), a relative TTL t becomes t * (1 + u) milliseconds, u uniform in
// [-percent, +percent] ([0, +percent] with positive_only), never below 1 ms; EX is rewritten
// to PX. With default_ttl, a SET without any expiration option gets PX <jittered default>.
// EXAT, PXAT, KEEPTTL, PERSIST and anything else are left alone. Arguments Redis would reject
// (a non-integer or non-positive TTL) are left alone too, so Redis answers its own error.
//
// Returns true and writes the whole rewritten command (a RESP array) to `out` when it
// changed the command; false (out untouched) otherwise.
bool apply_ttl_jitter(std::span<const std::string_view> args, const config::JitterConfig& jitter,
                      Random& random, std::string& out);

// The jittered TTL in ms for a TTL of `ttl_ms` (exposed for tests and docs).
long long jittered_ttl_ms(long long ttl_ms, const config::JitterConfig& jitter, Random& random);

}  // namespace respguard::policy
