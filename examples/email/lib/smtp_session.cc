#include "smtp_session.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "message.h"

namespace quorate_email {
namespace {

// Splits "FROM:<a@b> SIZE=10" after `prefix` into the path (inside the
// angle brackets) and the parameters. False if it is not of that shape.
bool SplitPath(absl::string_view arg, absl::string_view prefix,
               std::string* path, std::vector<std::string>* params) {
  if (!absl::StartsWithIgnoreCase(arg, prefix)) return false;
  arg.remove_prefix(prefix.size());
  arg = absl::StripLeadingAsciiWhitespace(arg);
  if (arg.empty() || arg[0] != '<') return false;
  size_t close = arg.find('>');
  if (close == absl::string_view::npos) return false;
  *path = std::string(arg.substr(1, close - 1));
  for (absl::string_view p :
       absl::StrSplit(arg.substr(close + 1), ' ', absl::SkipEmpty())) {
    params->push_back(std::string(p));
  }
  return true;
}

}  // namespace

SmtpSession::SmtpSession(std::string hostname, SmtpLimits limits,
                         Deliver deliver, Accept accept, absl::Time now)
    : hostname_(std::move(hostname)),
      limits_(limits),
      deliver_(std::move(deliver)),
      accept_(std::move(accept)),
      last_activity_(now) {}

std::string SmtpSession::Greeting() const {
  return absl::StrCat("220 ", hostname_, " ESMTP ready\r\n");
}

std::string SmtpSession::Reply(int code, absl::string_view enhanced,
                               absl::string_view text) {
  return absl::StrCat(code, " ", enhanced, " ", text, "\r\n");
}

std::string SmtpSession::Error(int code, absl::string_view enhanced,
                               absl::string_view text) {
  std::string out = Reply(code, enhanced, text);
  if (++errors_ >= limits_.max_errors) {
    absl::StrAppend(&out, Reply(421, "4.7.0", "too many errors, closing"));
    closed_ = true;
  }
  return out;
}

std::string SmtpSession::Render(const SmtpReply& r) {
  std::vector<absl::string_view> lines = absl::StrSplit(r.text, '\n');
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    absl::StrAppend(&out, r.code, i + 1 < lines.size() ? "-" : " ", lines[i],
                    "\r\n");
  }
  return out;
}

void SmtpSession::Reset() {
  std::string helo = std::move(envelope_.helo);
  envelope_ = Envelope{};
  envelope_.helo = std::move(helo);
  if (state_ != State::kConnected) state_ = State::kGreeted;
  oversized_ = false;
}

absl::Time SmtpSession::Deadline() const {
  if (state_ == State::kData) {
    return std::min(last_activity_ + limits_.data_idle_timeout,
                    data_started_ + limits_.data_total_timeout);
  }
  return last_activity_ + limits_.command_timeout;
}

std::string SmtpSession::TimedOut() {
  closed_ = true;
  return absl::StrCat("421 4.4.2 ", hostname_,
                      " timeout exceeded, closing connection\r\n");
}

std::string SmtpSession::Feed(absl::string_view bytes, absl::Time now) {
  std::string out;
  if (state_ == State::kData && !bytes.empty()) last_activity_ = now;
  size_t i = 0;
  while (i < bytes.size() && !closed_) {
    size_t nl = bytes.find('\n', i);
    if (nl == absl::string_view::npos) {
      absl::string_view rest = bytes.substr(i);
      i = bytes.size();
      if (discarding_) {
        discard_cr_ = !rest.empty() && rest.back() == '\r';
        break;
      }
      pending_.append(rest.data(), rest.size());
      // A partial line may not grow without bound: a command line past
      // max_line is refused now; a data line counts against max_message.
      if (state_ != State::kData && pending_.size() > limits_.max_line) {
        pending_.clear();
        discarding_ = true;
        absl::StrAppend(&out, Error(500, "5.5.2", "line too long"));
      } else if (state_ == State::kData &&
                 envelope_.data.size() + pending_.size() >
                     limits_.max_message) {
        discard_cr_ = pending_.back() == '\r';
        pending_.clear();
        discarding_ = true;
        oversized_ = true;
        envelope_.data.clear();
      }
      break;
    }
    absl::string_view piece = bytes.substr(i, nl - i);
    i = nl + 1;
    if (discarding_) {
      // The end of an overlong line: already answered (or counted). In
      // DATA only a CRLF ends it, its CR perhaps in an earlier read.
      if (state_ != State::kData || (!piece.empty() && piece.back() == '\r') ||
          (piece.empty() && discard_cr_)) {
        discarding_ = false;
      }
      discard_cr_ = false;
      continue;
    }
    pending_.append(piece.data(), piece.size());
    if (state_ == State::kData) {
      // Only CRLF ends a line in DATA: a bare LF is part of the line, so
      // "<LF>.<LF>" cannot end a message early (SMTP smuggling).
      if (pending_.empty() || pending_.back() != '\r') {
        pending_.push_back('\n');
        if (envelope_.data.size() + pending_.size() > limits_.max_message) {
          pending_.clear();
          discarding_ = true;
          discard_cr_ = false;
          oversized_ = true;
          envelope_.data.clear();
        }
        continue;
      }
      pending_.pop_back();
      std::string line = std::move(pending_);
      pending_.clear();
      absl::StrAppend(&out, DataLine(line));
      continue;
    }
    if (!pending_.empty() && pending_.back() == '\r') pending_.pop_back();
    std::string line = std::move(pending_);
    pending_.clear();
    last_activity_ = now;
    if (line.size() + 2 > limits_.max_line) {
      absl::StrAppend(&out, Error(500, "5.5.2", "line too long"));
      continue;
    }
    absl::StrAppend(&out, Command(line));
    if (state_ == State::kData) data_started_ = now;
  }
  return out;
}

std::string SmtpSession::DataLine(absl::string_view line) {
  if (line == ".") {
    std::string out;
    if (oversized_) {
      out = Reply(552, "5.3.4", "message too big");
    } else {
      out = Render(deliver_(envelope_));
    }
    Reset();
    return out;
  }
  if (oversized_) return "";
  if (!line.empty() && line[0] == '.') line.remove_prefix(1);
  if (envelope_.data.size() + line.size() + 2 > limits_.max_message) {
    oversized_ = true;
    envelope_.data.clear();
    return "";
  }
  absl::StrAppend(&envelope_.data, line, "\r\n");
  return "";
}

std::string SmtpSession::Command(absl::string_view line) {
  for (char c : line) {
    unsigned char u = static_cast<unsigned char>(c);
    if ((u < 32 && c != '\t') || u >= 127) {
      return Error(500, "5.5.2", "command has bytes that are not text");
    }
  }
  size_t space = line.find(' ');
  std::string verb = absl::AsciiStrToUpper(line.substr(0, space));
  absl::string_view arg =
      space == absl::string_view::npos
          ? absl::string_view()
          : absl::StripAsciiWhitespace(line.substr(space + 1));

  if (verb == "EHLO" || verb == "HELO") {
    if (arg.empty()) return Error(501, "5.5.4", "a domain is required");
    state_ = State::kGreeted;
    Reset();
    envelope_.helo = std::string(arg);
    if (verb == "HELO") return absl::StrCat("250 ", hostname_, "\r\n");
    return Render({250, absl::StrCat(hostname_, " greets ", arg,
                                     "\nPIPELINING\nSIZE ", limits_.max_message,
                                     "\n8BITMIME\nENHANCEDSTATUSCODES")});
  }
  if (verb == "MAIL") {
    if (state_ == State::kConnected) {
      return Error(503, "5.5.1", "send EHLO or HELO first");
    }
    if (state_ != State::kGreeted) {
      return Error(503, "5.5.1", "a transaction is already open");
    }
    std::string path;
    std::vector<std::string> params;
    if (!SplitPath(arg, "FROM:", &path, &params)) {
      return Error(501, "5.5.4", "syntax: MAIL FROM:<address>");
    }
    for (const std::string& p : params) {
      std::string key = absl::AsciiStrToUpper(p.substr(0, p.find('=')));
      absl::string_view value =
          p.find('=') == std::string::npos
              ? absl::string_view()
              : absl::string_view(p).substr(p.find('=') + 1);
      if (key == "SIZE") {
        uint64_t size = 0;
        if (!absl::SimpleAtoi(value, &size)) {
          return Error(501, "5.5.4", "SIZE takes a number");
        }
        if (size > limits_.max_message) {
          return Reply(552, "5.3.4", "message size exceeds fixed limit");
        }
      } else if (key == "BODY") {
        std::string body = absl::AsciiStrToUpper(value);
        if (body != "7BIT" && body != "8BITMIME") {
          return Error(501, "5.5.4", "BODY is 7BIT or 8BITMIME");
        }
      } else {
        return Error(555, "5.5.4", absl::StrCat("unsupported parameter ", p));
      }
    }
    if (path.empty()) {
      envelope_.from.clear();
    } else {
      absl::StatusOr<std::string> from = NormalizeAddress(path);
      if (!from.ok()) return Error(501, "5.1.7", "bad sender address syntax");
      envelope_.from = *from;
    }
    state_ = State::kMail;
    return Reply(250, "2.1.0", "sender OK");
  }
  if (verb == "RCPT") {
    if (state_ != State::kMail && state_ != State::kRcpt) {
      return Error(503, "5.5.1", "send MAIL first");
    }
    std::string path;
    std::vector<std::string> params;
    if (!SplitPath(arg, "TO:", &path, &params)) {
      return Error(501, "5.5.4", "syntax: RCPT TO:<address>");
    }
    if (!params.empty()) {
      return Error(555, "5.5.4",
                   absl::StrCat("unsupported parameter ", params[0]));
    }
    absl::StatusOr<std::string> to = NormalizeAddress(path);
    if (!to.ok()) return Error(501, "5.1.3", "bad recipient address syntax");
    if (envelope_.to.size() >= limits_.max_recipients) {
      return Reply(452, "4.5.3", "too many recipients");
    }
    if (accept_) {
      SmtpReply r = accept_(*to);
      if (r.code != 250) return Render(r);
    }
    envelope_.to.push_back(*to);
    state_ = State::kRcpt;
    return Reply(250, "2.1.5", "recipient OK");
  }
  if (verb == "DATA") {
    if (!arg.empty()) return Error(501, "5.5.4", "DATA takes no argument");
    if (state_ == State::kMail) {
      return Error(554, "5.5.1", "no valid recipients");
    }
    if (state_ != State::kRcpt) return Error(503, "5.5.1", "send RCPT first");
    state_ = State::kData;
    oversized_ = false;
    envelope_.data.clear();
    return "354 End data with <CR><LF>.<CR><LF>\r\n";
  }
  if (verb == "RSET") {
    if (!arg.empty()) return Error(501, "5.5.4", "RSET takes no argument");
    Reset();
    return Reply(250, "2.0.0", "reset");
  }
  if (verb == "NOOP") return Reply(250, "2.0.0", "OK");
  if (verb == "VRFY") {
    return Reply(252, "2.5.0", "cannot VRFY, but will accept the message");
  }
  if (verb == "HELP") {
    return Reply(214, "2.0.0", "EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT");
  }
  if (verb == "QUIT") {
    closed_ = true;
    return Reply(221, "2.0.0", "bye");
  }
  if (verb == "STARTTLS" || verb == "AUTH" || verb == "BDAT" ||
      verb == "ETRN" || verb == "EXPN" || verb == "TURN") {
    return Error(502, "5.5.1", "command not implemented");
  }
  return Error(500, "5.5.1", "command unrecognized");
}

}  // namespace quorate_email
