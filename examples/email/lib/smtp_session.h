// smtp_session.h: the server side of one SMTP connection (RFC 5321), as a
// state machine with no I/O of its own: bytes in, replies out. The front
// and the sink drive it from a socket (smtp_server.h); tests drive it
// directly, with their own clock.
//
// It speaks EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY and QUIT, and
// advertises PIPELINING (a client may send several commands before reading
// the replies; they are answered in order), SIZE and 8BITMIME. Everything
// it receives is bounded:
// - a command line over `max_line` bytes: 500, and the rest of the line is
//   dropped;
// - an unknown command 500; bad arguments 501; a command out of sequence
//   503; more than `max_recipients` recipients 452 (the client sends the
//   rest in another transaction); a message over `max_message` bytes (or
//   a MAIL SIZE= over it) 552, the message discarded;
// - after `max_errors` bad commands, 421 and the connection closes;
// - every state has a deadline (Deadline()): `command_timeout` without a
//   whole command, `data_idle_timeout` without data in DATA, and
//   `data_total_timeout` for a whole DATA transfer, however it trickles.
//   When it passes, the driver calls TimedOut() (421, then close).
#ifndef QUORATE_EMAIL_SMTP_SESSION_H_
#define QUORATE_EMAIL_SMTP_SESSION_H_

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace quorate_email {

struct SmtpLimits {
  size_t max_line = 1000;  // RFC 5321 4.5.3.1.4, with the CRLF
  size_t max_message = 10 << 20;
  size_t max_recipients = 100;
  int max_errors = 10;
  absl::Duration command_timeout = absl::Minutes(5);
  absl::Duration data_idle_timeout = absl::Minutes(3);
  absl::Duration data_total_timeout = absl::Minutes(10);
};

// One message as the client handed it over.
struct Envelope {
  std::string helo;
  std::string from;             // the reverse path, normalized; "" for <>
  std::vector<std::string> to;  // normalized
  // Dot-unstuffed, with CRLF line ends; a bare CR or LF inside a line is
  // kept as it came (it ends neither a line nor the message).
  std::string data;
};

struct SmtpReply {
  int code = 250;
  std::string text;  // may hold several lines, separated by "\n"
};

class SmtpSession {
 public:
  // Called at the end of each DATA with the whole message; its reply is
  // the reply to DATA (250 only once the message is safe).
  using Deliver = std::function<SmtpReply(const Envelope&)>;
  // Called for each RCPT with the normalized address: a reply other than
  // 250 refuses that recipient. May be empty (every address is taken).
  using Accept = std::function<SmtpReply(const std::string& rcpt)>;

  SmtpSession(std::string hostname, SmtpLimits limits, Deliver deliver,
              Accept accept, absl::Time now);

  // The 220 greeting, sent first.
  std::string Greeting() const;
  // Consumes bytes the client sent at `now`; returns what to send back.
  std::string Feed(absl::string_view bytes, absl::Time now);
  // When the current state times out, if nothing more arrives.
  absl::Time Deadline() const;
  // The deadline passed: the 421 to send. The session is then closed.
  std::string TimedOut();
  // After QUIT, too many errors or a timeout: send what Feed returned,
  // then close the connection.
  bool closed() const { return closed_; }
  bool in_data() const { return state_ == State::kData; }

 private:
  enum class State { kConnected, kGreeted, kMail, kRcpt, kData };

  std::string Command(absl::string_view line);
  std::string DataLine(absl::string_view line);
  std::string Reply(int code, absl::string_view enhanced,
                    absl::string_view text);
  std::string Error(int code, absl::string_view enhanced,
                    absl::string_view text);
  std::string Render(const SmtpReply& r);
  void Reset();

  const std::string hostname_;
  const SmtpLimits limits_;
  const Deliver deliver_;
  const Accept accept_;
  State state_ = State::kConnected;
  bool closed_ = false;
  int errors_ = 0;
  std::string pending_;       // an incomplete line
  bool discarding_ = false;   // dropping the rest of an overlong line
  bool discard_cr_ = false;   // and the last byte it dropped was a CR
  bool oversized_ = false;    // DATA over max_message: discard to the end
  absl::Time last_activity_;  // the last whole line (or data) received
  absl::Time data_started_;
  Envelope envelope_;
};

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_SMTP_SESSION_H_
