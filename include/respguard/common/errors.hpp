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
inline constexpr std::string_view kSubscribeContext =
    "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "
    "allowed in this context";

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
inline constexpr std::string_view kShuttingDown = "ERR respguard: shutting down";
inline constexpr std::string_view kOutputBufferLimit =
    "ERR respguard: client output buffer limit reached";
inline constexpr std::string_view kQueryBufferLimit =
    "ERR respguard: client query buffer limit reached";

}  // namespace respguard::errors
