// smtp_client.h: sends one message over SMTP with libcurl, within a
// deadline. Used by processors (to the smarthost) and by the mail
// generator (to the fronts).
#ifndef QUORATE_EMAIL_SMTP_CLIENT_H_
#define QUORATE_EMAIL_SMTP_CLIENT_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

typedef void CURL;

namespace quorate_email {

// Call once in main before any thread starts (libcurl's global init).
void InitCurl();

// One sender keeps one SMTP connection open between messages. Not
// thread-safe: one per thread.
class SmtpClient {
 public:
  // `server` is HOST:PORT; `helo` the name to greet with.
  SmtpClient(std::string server, std::string helo);
  ~SmtpClient();
  SmtpClient(const SmtpClient&) = delete;
  SmtpClient& operator=(const SmtpClient&) = delete;

  // Sends `data` (a whole message, CRLF line ends, not dot-stuffed) from
  // `from` to `to`, taking at most `deadline` in all. OK once the server
  // answered 250 to DATA. UNAVAILABLE when the server cannot be reached or
  // answered 4xx (try again), or the deadline passed (the message may or
  // may not have been taken: a resend can make a duplicate);
  // FAILED_PRECONDITION when it refused with 5xx.
  //
  // `keep_going`, if given, is asked every 50 ms while the call waits; once
  // it answers false the call ends at once with CANCELLED (the server may
  // or may not have taken the message, as with a deadline). A processor
  // passes "do I still own the shard and may outbound run": a pause or a
  // lost shard stops its sends within that much, not at their deadline.
  absl::Status Send(const std::string& from, const std::vector<std::string>& to,
                    const std::string& data, absl::Duration deadline,
                    const std::function<bool()>& keep_going = nullptr);
  // The server's last reply code (0 if none).
  long last_code() const { return last_code_; }

 private:
  std::string url_;
  CURL* curl_;
  void* multi_;      // CURLM*: drives curl_ so that Send can be cut short
  int socket_ = -1;  // the connection's, as curl opened it
  long last_code_ = 0;
};

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_SMTP_CLIENT_H_
