#include "smtp_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace quorate_email {
namespace {

bool SendAll(int fd, absl::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SmtpServer>> SmtpServer::Start(
    SmtpServerOptions options, SmtpSession::Deliver deliver,
    SmtpSession::Accept accept) {
  size_t colon = options.listen.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: not HOST:PORT: \"", options.listen, "\""));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string host = options.listen.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen: not an IPv4 address: \"", host, "\""));
  }
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(std::strerror(errno));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 128) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, ": ", why));
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::unique_ptr<SmtpServer> s(new SmtpServer());
  s->options_ = std::move(options);
  s->deliver_ = std::move(deliver);
  s->accept_ = std::move(accept);
  s->listen_fd_ = fd;
  s->address_ = absl::StrCat(host, ":", ntohs(addr.sin_port));
  s->acceptor_ = std::thread([raw = s.get()] { raw->AcceptLoop(); });
  return s;
}

SmtpServer::~SmtpServer() { Stop(); }

void SmtpServer::Stop() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  ::close(listen_fd_);
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_) ::shutdown(fd, SHUT_RDWR);
    threads.swap(threads_);
    finished_.clear();
  }
  for (auto& [id, t] : threads) t.join();
}

void SmtpServer::JoinFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (uint64_t id : finished_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      done.push_back(std::move(it->second));
      threads_.erase(it);
    }
    finished_.clear();
  }
  for (std::thread& t : done) t.join();
}

void SmtpServer::AcceptLoop() {
  while (!stopping_.load()) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_.load()) return;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: let connections end, then try again.
        ::poll(nullptr, 0, 50);
        continue;
      }
      return;
    }
    JoinFinished();
    timeval send_timeout{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout,
                 sizeof send_timeout);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_.load() || open_.size() >= options_.max_connections) {
      SendAll(fd, absl::StrCat("421 4.3.2 ", options_.hostname,
                               " too many connections, try again later\r\n"));
      ::close(fd);
      continue;
    }
    open_.insert(fd);
    uint64_t id = next_id_++;
    threads_[id] = std::thread([this, fd, id] { Serve(fd, id); });
  }
}

void SmtpServer::Serve(int fd, uint64_t id) {
  SmtpSession session(options_.hostname, options_.limits, deliver_, accept_,
                      absl::Now());
  // While held, a connection whose client gave up (its deadline) is
  // closed, as a hung server's kernel would: it must not count against
  // max_connections for ever. False if it is gone.
  auto held = [this, fd] {
    while (options_.hold && options_.hold() && !stopping_.load()) {
      pollfd p{fd, POLLRDHUP, 0};
      if (::poll(&p, 1, 20) > 0 &&
          (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0) {
        return false;
      }
    }
    return true;
  };
  bool ok = held() && SendAll(fd, session.Greeting());
  char buf[16384];
  while (ok && !session.closed() && !stopping_.load()) {
    absl::Duration left = session.Deadline() - absl::Now();
    if (left <= absl::ZeroDuration()) {
      SendAll(fd, session.TimedOut());
      break;
    }
    pollfd p{fd, POLLIN, 0};
    int ms = static_cast<int>(
        std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60000));
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::string out = session.Feed(
        absl::string_view(buf, static_cast<size_t>(n)), absl::Now());
    if (!out.empty()) ok = held() && SendAll(fd, out);
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_.erase(fd);
  ::close(fd);
  finished_.push_back(id);
}

}  // namespace quorate_email
