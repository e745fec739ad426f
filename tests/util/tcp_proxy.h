// tests/util/tcp_proxy.h: a TCP proxy on loopback that a test can cut, to
// cut a client off from a cluster without a network namespace: every
// connection to address() is relayed to `target` until Cut(), which closes
// them all and closes every later one at once, until Heal().
#ifndef QUORATE_TESTS_UTIL_TCP_PROXY_H_
#define QUORATE_TESTS_UTIL_TCP_PROXY_H_

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace quorate::testing {

class TcpProxy {
 public:
  // `target` is "127.0.0.1:PORT". Listens on an ephemeral loopback port.
  explicit TcpProxy(std::string target);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  std::string address() const;
  bool ok() const { return listen_fd_ >= 0; }
  void Cut();
  // Relays new connections again (those Cut() closed stay closed).
  void Heal();
  // Drops every byte from now on, both ways, and holds new connections
  // open without relaying them: a link that went silent (a network cut
  // seen from both ends), where Cut() is one that was refused.
  void Blackhole() { blackhole_ = true; }

 private:
  void AcceptLoop();
  void Pump(int a, int b);

  const std::string target_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::atomic<bool> blackhole_{false};
  std::mutex mu_;
  std::vector<int> fds_;  // open connections, both sides
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_TCP_PROXY_H_
