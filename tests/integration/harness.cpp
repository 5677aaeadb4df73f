#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rgtest {
namespace {

// Writing to a connection the server already closed must fail with EPIPE, not kill the test.
const bool kSigpipeIgnored = [] {
  std::signal(SIGPIPE, SIG_IGN);
  return true;
}();

timeval to_timeval(Millis ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string last_lines(const std::string& text, std::size_t count) {
  std::size_t pos = text.size();
  for (std::size_t seen = 0; pos > 0 && seen <= count;) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
    ++seen;
  }
  return text.substr(pos == 0 ? 0 : pos + 1);
}

// A fresh connection that sends PING. Redis must say PONG; for the proxy any reply counts as
// "listening" (with its upstream down it may answer PING with an error).
bool answers_ping(int port, bool any_reply) {
  redisContext* ctx = redisConnectWithTimeout("127.0.0.1", port, to_timeval(200ms));
  if (ctx == nullptr) return false;
  bool ok = false;
  if (ctx->err == 0 && redisSetTimeout(ctx, to_timeval(1000ms)) == REDIS_OK) {
    Reply reply(static_cast<redisReply*>(redisCommand(ctx, "PING")));
    ok = reply && (any_reply || (reply->type == REDIS_REPLY_STATUS &&
                                 std::string_view(reply->str, reply->len) == "PONG"));
  }
  redisFree(ctx);
  return ok;
}

bool current_test_failed() {
  return ::testing::Test::HasFailure();
}

// Keeps the temp dir (logs, config) of a failed test for a look afterwards.
void remove_dir_unless_failed(const std::string& dir) {
  if (dir.empty()) return;
  if (current_test_failed()) {
    std::cout << "[harness] kept " << dir << "\n";
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// The process state letter from /proc/<pid>/stat ('T' = stopped).
char process_state(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::size_t paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

}  // namespace

bool direct_mode() {
  const char* value = std::getenv("RESPGUARD_TEST_DIRECT");
  return value != nullptr && std::string_view(value) == "1";
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind 127.0.0.1:0: " + std::string(std::strerror(errno)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool wait_until(const std::function<bool()>& condition, Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::string make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "respguard-it-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp: " + std::string(std::strerror(errno)));
  }
  return pattern;
}

// ---- ChildProcess ----

void ChildProcess::start(const std::vector<std::string>& argv, const std::string& log_path) {
  kill();
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (log_fd < 0 || null_fd < 0) throw std::runtime_error("cannot open " + log_path);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);  // the test died before prctl took effect
    // Ignored signals stay ignored across exec: give the server the default SIGPIPE back.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    const char msg[] = "harness: exec failed\n";
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  pid_ = pid;
  status_ = -1;
}

void ChildProcess::reap(int wait_status) {
  status_ = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
  pid_ = -1;
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int wait_status = 0;
  pid_t result = ::waitpid(pid_, &wait_status, WNOHANG);
  if (result == 0) return true;
  if (result == pid_) {
    reap(wait_status);
  } else {
    pid_ = -1;  // not our child any more (cannot happen unless someone else reaped it)
  }
  return false;
}

void ChildProcess::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::wait_exit(Millis timeout) {
  if (!wait_until([this] { return !running(); }, timeout)) return std::nullopt;
  return status_;
}

int ChildProcess::terminate(Millis timeout) {
  if (!running()) return status_;
  signal(SIGTERM);
  if (std::optional<int> status = wait_exit(timeout)) return *status;
  kill();
  return -1;
}

void ChildProcess::kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int wait_status = 0;
  if (::waitpid(pid_, &wait_status, 0) == pid_) {
    reap(wait_status);
  } else {
    pid_ = -1;
  }
}

// ---- RedisServer ----

RedisServer::RedisServer(std::vector<std::string> extra_args, int port)
    : extra_args_(std::move(extra_args)), dir_(make_temp_dir()), log_path_(dir_ + "/redis.log") {
  // A free port may be taken by someone else before redis-server binds it: then try another.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = port != 0 ? port : free_port();
    if (start_once()) return;
    if (port != 0) break;
  }
  throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) +
                           "; log " + log_path_ + ":\n" + last_lines(read_file(log_path_), 20));
}

RedisServer::~RedisServer() {
  process_.signal(SIGCONT);  // a paused server cannot even die cleanly
  process_.kill();
  remove_dir_unless_failed(dir_);
}

bool RedisServer::start_once() {
  std::vector<std::string> argv = {REDIS_SERVER_BINARY,
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  process_.start(argv, log_path_);
  wait_until([this] { return !process_.running() || answers_ping(port_, false); }, 5000ms);
  return process_.running() && answers_ping(port_, false);
}

void RedisServer::stop() {
  process_.signal(SIGCONT);
  process_.terminate(5000ms);
}

void RedisServer::kill() {
  process_.kill();
}

void RedisServer::pause() {
  process_.signal(SIGSTOP);
  // Stopping is asynchronous; tests rely on it having happened.
  pid_t pid = process_.pid();
  if (!wait_until([pid] { return process_state(pid) == 'T'; }, 2000ms)) {
    throw std::runtime_error("redis-server did not stop on SIGSTOP");
  }
}

void RedisServer::resume() {
  process_.signal(SIGCONT);
}

void RedisServer::restart() {
  stop();
  if (!start_once()) {
    throw std::runtime_error("redis-server did not restart on port " + std::to_string(port_) +
                             ":\n" + last_lines(read_file(log_path_), 20));
  }
}

// ---- ProxyServer ----

ProxyServer::ProxyServer(int upstream_port, ProxyOptions options) : dir_(make_temp_dir()) {
  if (direct_mode()) {
    port_ = upstream_port;
    return;
  }
  log_path_ = dir_ + "/respguard.log";
  if (::access(RESPGUARD_BINARY, X_OK) != 0) {
    throw std::runtime_error(std::string("respguard binary not found: ") + RESPGUARD_BINARY);
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    admin_port_ = free_port();
    if (start_once(upstream_port, options)) return;
  }
  throw std::runtime_error("respguard did not start (last port " + std::to_string(port_) +
                           "); log " + log_path_ + ":\n" + last_lines(log(), 50));
}

ProxyServer::~ProxyServer() {
  if (current_test_failed()) print_log();
  process_.kill();
  remove_dir_unless_failed(dir_);
}

bool ProxyServer::start_once(int upstream_port, const ProxyOptions& options) {
  std::vector<std::string> argv = {RESPGUARD_BINARY};
  if (!options.config_yaml.empty()) {
    std::string config_path = dir_ + "/respguard.yaml";
    std::ofstream(config_path) << options.config_yaml;
    argv.insert(argv.end(), {"--config", config_path});
  }
  argv.insert(argv.end(),
              {"--listen", "127.0.0.1:" + std::to_string(port_), "--upstream",
               "127.0.0.1:" + std::to_string(upstream_port), "--workers", "2", "--admin",
               "127.0.0.1:" + std::to_string(admin_port_), "--log-level", "warn"});
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  process_.start(argv, log_path_);
  // 10 s rather than 5: sanitizer builds start slowly. With TLS on the listener, /readyz says
  // when the listener (bound before the admin endpoint) and the upstream connections are up.
  auto up = [&] {
    return options.tls_listener ? http_status(admin_port_, "/readyz") == 200
                                : answers_ping(port_, true);
  };
  wait_until([&] { return !process_.running() || up(); }, 10000ms);
  return process_.running() && up();
}

std::string ProxyServer::log() const {
  return log_path_.empty() ? "" : read_file(log_path_);
}

void ProxyServer::print_log() const {
  if (log_path_.empty()) return;  // direct mode: there is no proxy
  std::cout << "---- respguard log (" << log_path_ << "), last 200 lines ----\n"
            << last_lines(log(), 200) << "---- end of respguard log ----\n";
}

// ---- replies and Client ----

std::string text(const redisReply* reply) {
  if (reply == nullptr) return "(no reply)";
  switch (reply->type) {
    case REDIS_REPLY_STATUS:
      return "+" + std::string(reply->str, reply->len);
    case REDIS_REPLY_ERROR:
      return "-" + std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return ":" + std::to_string(reply->integer);
    case REDIS_REPLY_STRING:
      return "$" + std::string(reply->str, reply->len);
    case REDIS_REPLY_NIL:
      return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string out = "[";
      for (std::size_t i = 0; i < reply->elements; ++i) {
        if (i > 0) out += ", ";
        out += text(reply->element[i]);
      }
      return out + "]";
    }
  }
  return "(unknown reply type " + std::to_string(reply->type) + ")";
}

std::vector<std::string> element_texts(const redisReply* reply) {
  std::vector<std::string> out;
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY) {
    for (std::size_t i = 0; i < reply->elements; ++i) out.push_back(text(reply->element[i]));
  }
  return out;
}

Client::Client(int port, Millis timeout) {
  ctx_ = redisConnectWithTimeout("127.0.0.1", port, to_timeval(timeout));
  if (ctx_ != nullptr && ctx_->err == 0) redisSetTimeout(ctx_, to_timeval(timeout));
}

Client::~Client() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

std::string Client::error() const {
  if (ctx_ == nullptr) return "could not allocate a hiredis context";
  return ctx_->err == 0 ? "" : std::string(ctx_->errstr);
}

Reply Client::command(const std::vector<std::string>& args) {
  if (ctx_ == nullptr) return nullptr;
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lengths.data())));
}

std::string Client::run(const std::vector<std::string>& args) {
  Reply reply = command(args);
  return reply ? text(reply) : "(no reply: " + error() + ")";
}

void Client::append(const std::vector<std::string>& args) {
  if (ctx_ == nullptr) return;
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), argv.data(), lengths.data());
}

bool Client::flush() {
  if (!connected()) return false;
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return false;
  }
  return true;
}

Reply Client::get_reply() {
  if (ctx_ == nullptr) return nullptr;
  void* reply = nullptr;
  if (redisGetReply(ctx_, &reply) != REDIS_OK) return nullptr;
  return Reply(static_cast<redisReply*>(reply));
}

// ---- RawSocket ----

RawSocket::RawSocket(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  timeval send_timeout = to_timeval(10000ms);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof(send_timeout));
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

RawSocket::~RawSocket() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawSocket::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string RawSocket::read_message(Millis timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (std::size_t size = resp_message_size(buffer_); size > 0) {
      std::string message = buffer_.substr(0, size);
      buffer_.erase(0, size);
      return message;
    }
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return "";
    pollfd pfd{fd_, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return "";
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "";
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

bool RawSocket::wait_closed(Millis timeout) {
  buffer_.clear();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) return false;
    pollfd pfd{fd_, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return true;
    if (ready == 0) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof(chunk), 0);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return true;  // ECONNRESET and the like
  }
}

namespace {

long long parse_length(std::string_view line) {
  return std::strtoll(std::string(line).c_str(), nullptr, 10);
}

// End offset of the message that starts at `pos`, or nullopt while it is incomplete.
std::optional<std::size_t> message_end(std::string_view bytes, std::size_t pos) {
  if (pos >= bytes.size()) return std::nullopt;
  std::size_t eol = bytes.find("\r\n", pos);
  if (eol == std::string_view::npos) return std::nullopt;
  char type = bytes[pos];
  std::string_view line = bytes.substr(pos + 1, eol - pos - 1);
  std::size_t next = eol + 2;
  switch (type) {
    case '$':    // bulk string
    case '!':    // RESP3 bulk error
    case '=': {  // RESP3 verbatim string
      long long length = parse_length(line);
      if (length < 0) return next;
      if (bytes.size() < next + static_cast<std::size_t>(length) + 2) return std::nullopt;
      return next + static_cast<std::size_t>(length) + 2;
    }
    case '*':    // array
    case '~':    // RESP3 set
    case '>':    // RESP3 push
    case '%':    // RESP3 map
    case '|': {  // RESP3 attribute: a map that precedes the actual reply
      long long count = parse_length(line);
      if (count < 0) return next;
      if (type == '%' || type == '|') count *= 2;
      for (long long i = 0; i < count; ++i) {
        std::optional<std::size_t> end = message_end(bytes, next);
        if (!end) return std::nullopt;
        next = *end;
      }
      return type == '|' ? message_end(bytes, next) : std::optional<std::size_t>(next);
    }
    default:  // one-line types: + - : _ , # (
      return next;
  }
}

}  // namespace

std::size_t resp_message_size(std::string_view bytes) {
  return message_end(bytes, 0).value_or(0);
}

// ---- Redis's own view ----

std::optional<long long> info_field(int redis_port, const std::string& section,
                                    const std::string& field) {
  Client client(redis_port);
  Reply reply = client.command({"INFO", section});
  if (!reply || reply->type != REDIS_REPLY_STRING) return std::nullopt;
  std::istringstream lines(std::string(reply->str, reply->len));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atoll(line.c_str() + field.size() + 1);
  }
  return std::nullopt;
}

long long commandstat_calls(int redis_port, const std::string& command) {
  Client client(redis_port);
  Reply reply = client.command({"INFO", "commandstats"});
  if (!reply || reply->type != REDIS_REPLY_STRING) return -1;
  std::string name;
  for (char c : command) name += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // "cmdstat_get:calls=5,usec=12,..."
  std::istringstream lines(std::string(reply->str, reply->len));
  std::string line;
  std::string prefix = "cmdstat_" + name + ":calls=";
  while (std::getline(lines, line)) {
    if (line.rfind(prefix, 0) == 0) return std::atoll(line.c_str() + prefix.size());
  }
  return 0;
}

std::string redis_cli(int port, const std::vector<std::string>& args) {
  auto quote = [](const std::string& arg) {
    std::string out = "'";
    for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  };
  std::string command =
      "timeout 10 " + quote(REDIS_CLI_BINARY) + " -h 127.0.0.1 -p " + std::to_string(port);
  for (const std::string& arg : args) command += " " + quote(arg);
  command += " 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return "(popen failed)";
  std::string output;
  char chunk[4096];
  while (std::size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) output.append(chunk, n);
  ::pclose(pipe);
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  return output;
}

// ---- HTTP ----

std::string http_get(int port, std::string path, int* status, Millis timeout) {
  return http_request(port, "GET", std::move(path), status, timeout);
}

std::string http_request(int port, std::string_view method, std::string path, int* status,
                         Millis timeout) {
  *status = -1;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  timeval tv = to_timeval(timeout);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = std::string(method) + " " + path +
                                " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                                "\r\nConnection: close\r\n\r\n";
    std::string_view rest = request;
    while (!rest.empty()) {
      ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
    // The server closes the connection after one response: read to EOF (or the deadline).
    char chunk[65536];
    while (rest.empty() && std::chrono::steady_clock::now() < deadline) {
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      response.append(chunk, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);

  // "HTTP/1.1 200 OK\r\nHeader: value\r\n...\r\n\r\nbody"
  const std::size_t head_end = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.") || head_end == std::string::npos) return "";
  const std::size_t sp = response.find(' ');
  if (sp == std::string::npos || sp + 4 > response.size()) return "";
  const int code = std::atoi(response.c_str() + sp + 1);
  std::string body = response.substr(head_end + 4);
  std::string head = response.substr(0, head_end + 2);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (std::size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
    const long long length = std::atoll(head.c_str() + cl + 17);
    if (length != static_cast<long long>(body.size())) return body;  // truncated: status -1
  }
  *status = code;
  return body;
}

int http_status(int port, const std::string& path, std::string* body) {
  int status = 0;
  std::string text = http_get(port, path, &status, 2s);
  if (body) *body = text;
  return status;
}

// ---- SharedProxyTest ----

void SharedProxyTest::SetUpTestSuite() {
  // A failure here must fail every test, not skip it: GoogleTest marks the tests of a suite
  // whose SetUpTestSuite failed as SKIPPED, and ctest (gtest_discover_tests) counts a skip as
  // a pass. So the error is kept and reported by each test's SetUp.
  setup_error_.clear();
  try {
    redis_ = std::make_unique<RedisServer>();
    proxy_ = std::make_unique<ProxyServer>(redis_->port());
  } catch (const std::exception& e) {
    setup_error_ = e.what();
  }
}

void SharedProxyTest::TearDownTestSuite() {
  proxy_.reset();
  redis_.reset();
}

void SharedProxyTest::SetUp() {
  ASSERT_EQ(setup_error_, "") << "the suite's redis-server or respguard did not start";
  ASSERT_TRUE(redis_ && proxy_);
}

void SharedProxyTest::TearDown() {
  if (HasFailure() && proxy_) proxy_->print_log();
}

std::string SharedProxyTest::key(std::string_view suffix) {
  return std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + ":" +
         std::string(suffix);
}

Samples parse_samples(const std::string& text) {
  Samples out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::strtod(line.c_str() + sp + 1, nullptr);
  }
  return out;
}

double sample(const Samples& s, const std::string& series) {
  auto it = s.find(series);
  return it == s.end() ? std::nan("") : it->second;
}

Samples scrape(const ProxyServer& proxy) {
  int status = 0;
  std::string body = http_get(proxy.admin_port(), "/metrics", &status, 2s);
  return status == 200 ? parse_samples(body) : Samples{};
}

double metric(const ProxyServer& proxy, const std::string& series) {
  return sample(scrape(proxy), series);
}

Samples scrape_until(const ProxyServer& proxy, const std::function<bool(const Samples&)>& condition,
                     Millis timeout) {
  Samples last;
  wait_until(
      [&] {
        last = scrape(proxy);
        return !last.empty() && condition(last);
      },
      timeout);
  return last;
}

double metric_becomes(const ProxyServer& proxy, const std::string& series, double expected,
                      Millis timeout) {
  double last = std::nan("");
  wait_until(
      [&] {
        last = metric(proxy, series);
        return last == expected;
      },
      timeout);
  return last;
}

double metric_reaches(const ProxyServer& proxy, const std::string& series, double minimum,
                      Millis timeout) {
  double last = std::nan("");
  wait_until(
      [&] {
        last = metric(proxy, series);
        return last >= minimum;
      },
      timeout);
  return last;
}

}  // namespace rgtest
