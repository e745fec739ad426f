// email-loadgen: the demo's and the benchmarks' mail generator. Sends
// messages over SMTP to the fronts, to --mailboxes mailboxes, a share of
// them replies to earlier ones (so conversations form), at --rate per
// second. A message answered 4xx is sent again (to the next front) until
// one takes it: every message it counts as sent was accepted with 250.
//
//   email-loadgen --smtp=HOST:PORT,... [--count=N] [--rate=R]
//                 [--mailboxes=64] [--reply_percent=30] [--bad_every=0]
//
// --senders threads send at once, each message to the next front in turn
// (a front that failed sits out --front_penalty, as a mail client moves to
// the next MX): one hung front slows none of the others.
//
// Prints "sent=N retries=N" at the end (and a line per --report_interval
// while it runs); exits 0 once --count messages were accepted, 1 if it was
// stopped first.
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
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
ABSL_FLAG(int64_t, senders, 4, "messages in flight at once (threads)");
ABSL_FLAG(absl::Duration, send_timeout, absl::Seconds(10),
          "deadline of one send to a front");
ABSL_FLAG(absl::Duration, front_penalty, absl::Seconds(5),
          "a front that failed is tried again only after this (unless every "
          "front failed)");
ABSL_FLAG(absl::Duration, report_interval, absl::Seconds(1),
          "how often to print progress");

namespace quorate_email {
namespace {

// What the senders share: which message is next, the mailboxes' recent
// Message-IDs (replies point at them), the fronts' health, the counts.
class Generator {
 public:
  explicit Generator(std::vector<std::string> fronts)
      : fronts_(std::move(fronts)),
        down_until_(fronts_.size(), absl::InfinitePast()),
        rng_(absl::GetFlag(FLAGS_seed)),
        count_(absl::GetFlag(FLAGS_count)),
        rate_(absl::GetFlag(FLAGS_rate)),
        start_(absl::Now()) {}

  // One sender's loop.
  void Send() {
    std::vector<std::unique_ptr<SmtpClient>> clients;
    for (const std::string& f : fronts_) {
      clients.push_back(std::make_unique<SmtpClient>(f, "loadgen.test"));
    }
    for (;;) {
      Message m;
      if (!Next(&m)) return;
      if (rate_ > 0) {
        absl::Time due =
            start_ + absl::Seconds(static_cast<double>(m.index) / rate_);
        if (due > absl::Now() && WaitForStop(due - absl::Now())) return;
      }
      // Until a front takes it: 4xx and unreachable fronts are tried again.
      absl::Duration backoff = absl::Milliseconds(20);
      size_t front = Front(m.index);
      while (!StopRequested()) {
        absl::Status s = clients[front]->Send(
            m.from, {m.to}, m.data, absl::GetFlag(FLAGS_send_timeout));
        if (s.ok()) break;
        if (absl::IsFailedPrecondition(s)) {
          Log(absl::StrCat("refused for good: ", s.ToString()));
          std::lock_guard<std::mutex> lock(mu_);
          refused_ = true;
          return;
        }
        front = Failed(front);
        WaitForStop(backoff);
        backoff = std::min(backoff * 2, absl::Seconds(1));
      }
      if (StopRequested()) return;
      Sent(m);
    }
  }

  void Report(bool final) {
    std::lock_guard<std::mutex> lock(mu_);
    std::printf("%ssent=%lld retries=%lld\n", final ? "" : "loadgen ",
                static_cast<long long>(sent_),
                static_cast<long long>(retries_));
    std::fflush(stdout);
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_ || (count_ != 0 && sent_ >= count_);
  }
  int ExitCode() {
    std::lock_guard<std::mutex> lock(mu_);
    if (refused_) return 1;
    return count_ == 0 || sent_ >= count_ ? 0 : 1;
  }

 private:
  struct Message {
    int64_t index = 0;
    int64_t box = 0;
    std::string from, to, id, data;
  };

  bool Next(Message* m) {
    std::lock_guard<std::mutex> lock(mu_);
    if (refused_ || StopRequested() || (count_ != 0 && next_ >= count_)) {
      return false;
    }
    m->index = next_++;
    const int64_t mailboxes =
        std::max<int64_t>(1, absl::GetFlag(FLAGS_mailboxes));
    m->box = static_cast<int64_t>(rng_() % static_cast<uint64_t>(mailboxes));
    m->to = absl::StrCat("mailbox-", m->box, "@", absl::GetFlag(FLAGS_domain));
    m->from = absl::StrCat("sender-", rng_() % 1000, "@remote.test");
    m->id = absl::StrCat("<", absl::GetFlag(FLAGS_tag), ".", m->index,
                         "@loadgen.test>");
    std::string headers = absl::StrCat("From: <", m->from, ">\r\nTo: <", m->to,
                                       ">\r\nMessage-ID: ", m->id, "\r\n");
    std::deque<std::string>& r = recent_[m->box];
    if (!r.empty() && static_cast<int64_t>(rng_() % 100) <
                          absl::GetFlag(FLAGS_reply_percent)) {
      const std::string& parent = r[rng_() % r.size()];
      absl::StrAppend(&headers, "Subject: Re: topic\r\nIn-Reply-To: ", parent,
                      "\r\nReferences: ", parent, "\r\n");
    } else {
      absl::StrAppend(&headers, "Subject: topic ", m->index, "\r\n");
    }
    const int64_t bad_every = absl::GetFlag(FLAGS_bad_every);
    if (bad_every > 0 && (m->index + 1) % bad_every == 0) {
      absl::StrAppend(&headers, "this line is not a header field\r\n");
    }
    m->data = absl::StrCat(headers, "\r\nHello, message ", m->index, " for ",
                           m->to, ".\r\n");
    return true;
  }

  // The front for message `index`: the next in turn that is not sitting
  // out (any, if all are).
  size_t Front(int64_t index) {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t n = fronts_.size();
    const size_t first = static_cast<size_t>(index) % n;
    for (size_t k = 0; k < n; ++k) {
      if (down_until_[(first + k) % n] <= absl::Now()) return (first + k) % n;
    }
    return first;
  }
  size_t Failed(size_t front) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++retries_;
      down_until_[front] = absl::Now() + absl::GetFlag(FLAGS_front_penalty);
    }
    return Front(static_cast<int64_t>(front) + 1);
  }
  void Sent(const Message& m) {
    std::lock_guard<std::mutex> lock(mu_);
    ++sent_;
    std::deque<std::string>& r = recent_[m.box];
    r.push_back(m.id);
    if (r.size() > 4) r.pop_front();
  }

  const std::vector<std::string> fronts_;
  std::mutex mu_;
  std::vector<absl::Time> down_until_;
  std::mt19937_64 rng_;
  std::map<int64_t, std::deque<std::string>> recent_;
  const int64_t count_;
  const double rate_;
  const absl::Time start_;
  int64_t next_ = 0, sent_ = 0, retries_ = 0;
  bool refused_ = false;
};

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
  Generator gen(fronts);
  std::vector<std::thread> senders;
  const int64_t n = std::max<int64_t>(1, absl::GetFlag(FLAGS_senders));
  for (int64_t i = 0; i < n; ++i) senders.emplace_back([&] { gen.Send(); });
  const absl::Duration every = absl::GetFlag(FLAGS_report_interval);
  while (!gen.done() &&
         !WaitForStop(std::min(every, absl::Milliseconds(100)))) {
    static absl::Time next_report = absl::Now() + every;
    if (absl::Now() >= next_report) {
      gen.Report(/*final=*/false);
      next_report = absl::Now() + every;
    }
  }
  for (std::thread& t : senders) t.join();
  gen.Report(/*final=*/true);
  return gen.ExitCode();
}

}  // namespace
}  // namespace quorate_email

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return quorate_email::Main();
}
