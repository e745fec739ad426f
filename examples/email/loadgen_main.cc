// email-loadgen: the demo's and the benchmarks' mail generator. Sends
// messages over SMTP to the fronts, to --mailboxes mailboxes, a share of
// them replies to earlier ones (so conversations form), at --rate per
// second. A message answered 4xx is sent again (to the next front) until
// one takes it: every message it counts as sent was accepted with 250.
//
//   email-loadgen --smtp=HOST:PORT,... [--count=N] [--rate=R]
//                 [--mailboxes=64] [--reply_percent=30] [--bad_every=0]
//
// Prints "sent=N retries=N" at the end (and a line per --report_interval
// while it runs); exits 0 once --count messages were accepted, 1 if it was
// stopped first.
#include <cstdio>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/runtime.h"
#include "lib/smtp_client.h"

ABSL_FLAG(std::string, smtp, "", "HOST:PORT of fronts, comma-separated");
ABSL_FLAG(int64_t, count, 0, "messages to send (0: until stopped)");
ABSL_FLAG(double, rate, 0, "messages per second (0: as fast as accepted)");
ABSL_FLAG(int64_t, mailboxes, 64, "distinct recipient mailboxes");
ABSL_FLAG(std::string, domain, "example.test", "the mailboxes' domain");
ABSL_FLAG(int64_t, reply_percent, 30, "share of replies to earlier mail");
ABSL_FLAG(int64_t, bad_every, 0,
          "every Nth message has a malformed header (0: none)");
ABSL_FLAG(std::string, tag, "gen", "in every Message-ID, to tell runs apart");
ABSL_FLAG(uint64_t, seed, 1, "random seed");
ABSL_FLAG(absl::Duration, send_timeout, absl::Seconds(10),
          "deadline of one send to a front");
ABSL_FLAG(absl::Duration, front_penalty, absl::Seconds(5),
          "a front that failed is tried again only after this (unless every "
          "front failed)");
ABSL_FLAG(absl::Duration, report_interval, absl::Seconds(1),
          "how often to print progress");

namespace quorate_email {
namespace {

int Main() {
  InstallStopSignals();
  InitCurl();
  SetLogName("email-loadgen");
  std::vector<std::string> fronts =
      absl::StrSplit(absl::GetFlag(FLAGS_smtp), ',', absl::SkipEmpty());
  if (fronts.empty()) {
    std::fprintf(stderr, "email-loadgen: --smtp is required\n");
    return 2;
  }
  std::vector<std::unique_ptr<SmtpClient>> clients;
  for (const std::string& f : fronts) {
    clients.push_back(std::make_unique<SmtpClient>(f, "loadgen.test"));
  }
  const int64_t count = absl::GetFlag(FLAGS_count);
  const double rate = absl::GetFlag(FLAGS_rate);
  const int64_t mailboxes =
      std::max<int64_t>(1, absl::GetFlag(FLAGS_mailboxes));
  const int64_t bad_every = absl::GetFlag(FLAGS_bad_every);
  const std::string tag = absl::GetFlag(FLAGS_tag);
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));
  std::map<int64_t, std::deque<std::string>> recent;  // per mailbox
  int64_t sent = 0, retries = 0;
  size_t front = 0;
  // Fronts take turns, one message each; one that failed sits out a while,
  // as a mail client moves to the next MX.
  std::vector<absl::Time> down_until(clients.size(), absl::InfinitePast());
  auto next_front = [&] {
    for (size_t k = 1; k <= clients.size(); ++k) {
      size_t f = (front + k) % clients.size();
      if (down_until[f] <= absl::Now()) return f;
    }
    return (front + 1) % clients.size();
  };
  absl::Time start = absl::Now();
  absl::Time next_report = start + absl::GetFlag(FLAGS_report_interval);
  while ((count == 0 || sent < count) && !StopRequested()) {
    if (rate > 0) {
      absl::Time due = start + absl::Seconds(static_cast<double>(sent) / rate);
      if (due > absl::Now() && WaitForStop(due - absl::Now())) break;
    }
    int64_t box =
        static_cast<int64_t>(rng() % static_cast<uint64_t>(mailboxes));
    std::string to =
        absl::StrCat("mailbox-", box, "@", absl::GetFlag(FLAGS_domain));
    std::string from = absl::StrCat("sender-", rng() % 1000, "@remote.test");
    std::string id = absl::StrCat("<", tag, ".", sent, "@loadgen.test>");
    std::string headers = absl::StrCat("From: <", from, ">\r\nTo: <", to,
                                       ">\r\nMessage-ID: ", id, "\r\n");
    std::deque<std::string>& r = recent[box];
    if (!r.empty() && static_cast<int64_t>(rng() % 100) <
                          absl::GetFlag(FLAGS_reply_percent)) {
      const std::string& parent = r[rng() % r.size()];
      absl::StrAppend(&headers, "Subject: Re: topic\r\nIn-Reply-To: ", parent,
                      "\r\nReferences: ", parent, "\r\n");
    } else {
      absl::StrAppend(&headers, "Subject: topic ", sent, "\r\n");
    }
    if (bad_every > 0 && (sent + 1) % bad_every == 0) {
      absl::StrAppend(&headers, "this line is not a header field\r\n");
    }
    std::string data = absl::StrCat(headers, "\r\nHello, message ", sent,
                                    " for ", to, ".\r\n");
    // Until a front takes it: 4xx and unreachable fronts are tried again.
    absl::Duration backoff = absl::Milliseconds(20);
    while (!StopRequested()) {
      absl::Status s = clients[front]->Send(from, {to}, data,
                                            absl::GetFlag(FLAGS_send_timeout));
      if (s.ok()) break;
      if (absl::IsFailedPrecondition(s)) {
        Log(absl::StrCat("refused for good: ", s.ToString()));
        return 1;
      }
      ++retries;
      down_until[front] = absl::Now() + absl::GetFlag(FLAGS_front_penalty);
      front = next_front();
      WaitForStop(backoff);
      backoff = std::min(backoff * 2, absl::Seconds(1));
    }
    if (StopRequested()) break;
    front = next_front();
    ++sent;
    r.push_back(id);
    if (r.size() > 4) r.pop_front();
    if (absl::Now() >= next_report) {
      std::printf("loadgen sent=%lld retries=%lld\n",
                  static_cast<long long>(sent),
                  static_cast<long long>(retries));
      std::fflush(stdout);
      next_report = absl::Now() + absl::GetFlag(FLAGS_report_interval);
    }
  }
  std::printf("sent=%lld retries=%lld\n", static_cast<long long>(sent),
              static_cast<long long>(retries));
  return count != 0 && sent >= count ? 0 : (count == 0 ? 0 : 1);
}

}  // namespace
}  // namespace quorate_email

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return quorate_email::Main();
}
