#include "util/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>

namespace quorate::testing {

TcpProxy::TcpProxy(std::string target) : target_(std::move(target)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(listen_fd_, 64) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
    return;
  }
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  Cut();
  if (acceptor_.joinable()) acceptor_.join();
  std::vector<std::thread> pumps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pumps.swap(pumps_);
  }
  for (std::thread& t : pumps) t.join();
  for (int fd : fds_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

std::string TcpProxy::address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

void TcpProxy::Cut() {
  cut_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
}

void TcpProxy::Heal() {
  std::vector<std::thread> pumps;
  std::vector<int> fds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pumps.swap(pumps_);
    fds.swap(fds_);
  }
  for (std::thread& t : pumps) t.join();  // they end: cut_ is still set
  for (int fd : fds) ::close(fd);
  cut_ = false;
}

void TcpProxy::AcceptLoop() {
  const size_t colon = target_.rfind(':');
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(
      static_cast<uint16_t>(std::atoi(target_.substr(colon + 1).c_str())));
  ::inet_pton(AF_INET, target_.substr(0, colon).c_str(), &to.sin_addr);
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int in = ::accept(listen_fd_, nullptr, nullptr);
    if (in < 0) continue;
    if (cut_) {
      ::close(in);
      continue;
    }
    if (blackhole_) {  // held open, never answered (closed at the end)
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(in);
      continue;
    }
    const int out = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(out, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      ::close(in);
      ::close(out);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(in);
    fds_.push_back(out);
    pumps_.emplace_back([this, in, out] { Pump(in, out); });
  }
}

void TcpProxy::Pump(int a, int b) {
  char buf[16384];
  pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  while (!cut_) {
    if (::poll(p, 2, 50) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::read(p[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        ::shutdown(a, SHUT_RDWR);
        ::shutdown(b, SHUT_RDWR);
        return;
      }
      if (blackhole_) continue;  // dropped
      const int dst = i == 0 ? b : a;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w =
            ::send(dst, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
    }
  }
}

}  // namespace quorate::testing
