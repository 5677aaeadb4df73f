// Every error reply respguard itself produces, in one table: code, tests and docs quote the
// same text. Replies that mimic Redis use Redis's exact wording so clients react as they would.
#pragma once

#include <string_view>

namespace respguard::errors {

// Redis's own texts (src/server.c, src/networking.c of Redis 7).
inline constexpr std::string_view kMaxClients = "ERR max number of clients reached";
inline constexpr std::string_view kDbIndexOutOfRange = "ERR DB index is out of range";
inline constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
inline constexpr std::string_view kSyntax = "ERR syntax error";
inline constexpr std::string_view kClientNameInvalid =
    "ERR Client names cannot contain spaces, newlines or special characters.";
inline constexpr std::string_view kNoPasswordConfigured =
    "ERR AUTH <password> called without any password configured for the default user. Are you "
    "sure your configuration is correct?";
inline constexpr std::string_view kWrongPass =
    "WRONGPASS invalid username-password pair or user is disabled.";
inline constexpr std::string_view kNoProto = "NOPROTO unsupported protocol version";
inline constexpr std::string_view kNoAuth = "NOAUTH Authentication required.";
inline constexpr std::string_view kExecAbort =
    "EXECABORT Transaction discarded because of previous errors.";
// Redis's refusal in subscribed context (RESP2); it comes from Redis itself, through the proxy.
inline constexpr std::string_view kSubscribeContext =
    "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
    "allowed in this context";
inline constexpr std::string_view kHelloNoAuth =
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
    "<proto> AUTH <user> <pass> option can be used to authenticate the client and select the "
    "RESP protocol version at the same time";
// Redis 7's ACL refusals (src/acl.c, src/server.c; checked against redis-server 7.0.15). The
// command one names the command or "container|subcommand": kNoPermCommand + "'config|get'" +
// kNoPermCommandEnd.
inline constexpr std::string_view kNoPermCommand = "NOPERM this user has no permissions to run the ";
inline constexpr std::string_view kNoPermCommandEnd = " command";
inline constexpr std::string_view kNoPermKey =
    "NOPERM this user has no permissions to access one of the keys used as arguments";
inline constexpr std::string_view kNoPermChannel =
    "NOPERM this user has no permissions to access one of the channels used as arguments";
inline constexpr std::string_view kSortByDenied =
    "ERR BY option of SORT denied due to insufficient ACL permissions.";
inline constexpr std::string_view kSortGetDenied =
    "ERR GET option of SORT denied due to insufficient ACL permissions.";

// respguard's own conditions. Each says what happened and, where useful, what to do.
inline constexpr std::string_view kUpstreamTimeout = "ERR respguard: upstream request timed out";
inline constexpr std::string_view kUpstreamConnectionLost =
    "ERR respguard: upstream connection lost";
inline constexpr std::string_view kUpstreamUnavailable =
    "ERR respguard: upstream unavailable (reconnecting)";
inline constexpr std::string_view kTooManyPinned =
    "ERR respguard: too many dedicated upstream connections (server.max_pinned_connections)";
inline constexpr std::string_view kUnsupportedCommand =
    "ERR respguard: command not supported through a proxy";
inline constexpr std::string_view kClientIdsAreLocal =
    "ERR respguard: CLIENT KILL and CLIENT UNBLOCK are not supported through the proxy (client "
    "ids and addresses here are respguard's, not Redis's); use them on Redis directly";
inline constexpr std::string_view kPerConnectionOption =
    "ERR respguard: this CLIENT option applies to a whole Redis connection, which clients share "
    "behind the proxy";
// Protection (docs/operations.md). These two use the wording the operations guide promises.
inline constexpr std::string_view kCircuitOpen = "ERR upstream unavailable (circuit open)";
// The rate-limit text is built per identity by protection::rejection_message(), prefixed "ERR ".
inline constexpr std::string_view kShuttingDown = "ERR respguard: shutting down";
inline constexpr std::string_view kOutputBufferLimit =
    "ERR respguard: client output buffer limit reached";
inline constexpr std::string_view kQueryBufferLimit =
    "ERR respguard: client query buffer limit reached";

}  // namespace respguard::errors
