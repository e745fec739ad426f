// tests/util/port.h: free loopback ports for tests, without races.
//
// A PortReservation binds 127.0.0.1:0 with SO_REUSEPORT and keeps the
// socket (not listening) until it is destroyed: the kernel hands that port
// to nobody else meanwhile, while a gRPC server (which sets SO_REUSEPORT
// itself) can still bind it. Peers must know each other's gRPC addresses
// before anyone starts, hence the reservation. The admin listener does not
// set SO_REUSEPORT: tests give it port 0 and read the port back
// (AdminPortInLog in process.h). Never a fixed port.
#ifndef QUORATE_TESTS_UTIL_PORT_H_
#define QUORATE_TESTS_UTIL_PORT_H_

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "util/check.h"

namespace quorate::testing {

class PortReservation {
 public:
  PortReservation() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    QUORATE_CHECK(fd_ >= 0);
    int one = 1;
    QUORATE_CHECK(
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0);
    QUORATE_CHECK(
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    QUORATE_CHECK(
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    QUORATE_CHECK(
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~PortReservation() { ::close(fd_); }
  PortReservation(const PortReservation&) = delete;
  PortReservation& operator=(const PortReservation&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_PORT_H_
