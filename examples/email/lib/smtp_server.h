// smtp_server.h: an SMTP listener that runs one SmtpSession per
// connection, each on its own thread, with a bound on connections.
#ifndef QUORATE_EMAIL_SMTP_SERVER_H_
#define QUORATE_EMAIL_SMTP_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "smtp_session.h"

namespace quorate_email {

struct SmtpServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0: any free one
  std::string hostname = "localhost";  // in the greeting
  SmtpLimits limits;
  // Past this many open connections, a new one is answered 421 and closed.
  size_t max_connections = 64;
  // While this answers true, connections say nothing: no greeting, no
  // reply (a server that accepts TCP and then hangs; email-sink's silent
  // stall). Asked every 20 ms.
  std::function<bool()> hold;
};

class SmtpServer {
 public:
  // `deliver` and `accept` are called from the connections' threads, at
  // the same time for different connections.
  static absl::StatusOr<std::unique_ptr<SmtpServer>> Start(
      SmtpServerOptions options, SmtpSession::Deliver deliver,
      SmtpSession::Accept accept);
  ~SmtpServer();  // Stop()
  // Stops accepting, ends every connection and waits for their threads.
  void Stop();
  // The bound address, "HOST:PORT".
  const std::string& address() const { return address_; }

 private:
  SmtpServer() = default;
  void AcceptLoop();
  void Serve(int fd, uint64_t id);
  void JoinFinished();

  SmtpServerOptions options_;
  SmtpSession::Deliver deliver_;
  SmtpSession::Accept accept_;
  std::string address_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::set<int> open_;  // connections being served
  uint64_t next_id_ = 0;
  std::map<uint64_t, std::thread> threads_;  // the connections' threads
  std::vector<uint64_t> finished_;           // threads to join
};

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_SMTP_SERVER_H_
