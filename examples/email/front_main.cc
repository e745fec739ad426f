// email-front: the inbound SMTP front of the email example.
//
//   email-front --listen=HOST:PORT --db=DB --zone=Z
//
// Accepts mail over SMTP and answers 250 only once the message is
// committed to the inbound table: a message it accepted is never lost. It
// keeps no state of its own, so one can run in each zone. It answers 451
// (try again later) when the database cannot be reached or the inbound
// backlog is over --max_backlog: the sender keeps the message meanwhile,
// and nothing here queues without bound. Prints its bound address on the
// first line of stdout.
#include <cstdio>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "lib/db.h"
#include "lib/message.h"
#include "lib/runtime.h"
#include "lib/smtp_server.h"
#include "lib/store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:2525", "HOST:PORT to accept SMTP on");
ABSL_FLAG(std::string, db, "", "SQLite file or postgresql:// URL");
ABSL_FLAG(std::string, zone, "", "this front's zone");
ABSL_FLAG(std::string, id, "", "this front's name (default front-ZONE)");
ABSL_FLAG(int64_t, max_backlog, 20000,
          "answer 451 while more accepted messages than this wait");
ABSL_FLAG(int64_t, max_message_bytes, 10 << 20, "largest message taken");
ABSL_FLAG(int64_t, max_recipients, 50, "recipients per message");
ABSL_FLAG(int64_t, max_connections, 64, "open SMTP connections at most");
ABSL_FLAG(absl::Duration, command_timeout, absl::Minutes(5),
          "idle time allowed between commands");
ABSL_FLAG(absl::Duration, data_timeout, absl::Minutes(3),
          "idle time allowed inside DATA");
ABSL_FLAG(absl::Duration, data_total_timeout, absl::Minutes(10),
          "time allowed for one whole DATA transfer");

namespace quorate_email {
namespace {

class Front {
 public:
  Front(std::string id, DbPool* pool, int64_t max_backlog)
      : id_(std::move(id)), pool_(pool), max_backlog_(max_backlog) {}

  SmtpReply Deliver(const Envelope& env) {
    // The message's own Message-ID, or one made here (written into the
    // message, so readers see the id it is stored under).
    std::string raw = env.data;
    std::string header_id;
    absl::StatusOr<std::vector<std::string>> ids =
        ParseIds(HeaderValue(raw, "Message-ID"));
    if (ids.ok() && ids->size() == 1) {
      header_id = (*ids)[0];
    } else {
      header_id = NewId();
      raw = absl::StrCat("Message-ID: ", header_id, "\r\n", raw);
    }
    std::vector<InboundMessage> copies;
    std::set<std::string> mailboxes;
    for (const std::string& rcpt : env.to) {
      absl::StatusOr<std::string> mailbox = MailboxOf(rcpt);
      if (!mailbox.ok() || !mailboxes.insert(*mailbox).second) continue;
      InboundMessage m;
      m.header_message_id = header_id;
      m.mailbox = *mailbox;
      m.shard = ShardOf(*mailbox, kShards);
      m.mail_from = env.from;
      m.rcpt = rcpt;
      m.front = id_;
      m.raw = raw;
      copies.push_back(std::move(m));
    }
    // Each mailbox's copy under "<id>/mailbox": a message resent (its 250
    // lost) is stored once, and the same Message-ID sent to another
    // mailbox later, in a transaction of its own, is stored for that one.
    for (InboundMessage& m : copies) {
      m.message_id = absl::StrCat(header_id, "/", m.mailbox);
    }
    // Stored as text, so UTF-8 only (7-bit mail is): anything else is
    // refused for good rather than deferred.
    if (!ValidUtf8(raw) || raw.find('\0') != std::string::npos) {
      return {554, "5.6.0 only UTF-8 text without NUL bytes is taken here"};
    }
    absl::StatusOr<bool> over = OverBacklog();
    if (!over.ok()) return Unavailable(over.status());
    if (*over) {
      return {451, "4.3.1 inbound backlog is over its bound, try again later"};
    }
    absl::StatusOr<DbPool::Lease> db = pool_->Acquire(absl::Seconds(2));
    if (!db.ok()) return Unavailable(db.status());
    absl::Status s = (*db)->Begin();
    for (size_t i = 0; s.ok() && i < copies.size(); ++i) {
      s = StoreInbound(**db, copies[i]);
    }
    if (s.ok()) s = (*db)->Commit();
    if (!s.ok()) {
      (*db)->Rollback();
      if (absl::IsUnavailable(s)) db->Discard();
      return Unavailable(s);
    }
    accepted_.fetch_add(1);
    return {250, absl::StrCat("2.0.0 queued as ", header_id)};
  }

  int64_t accepted() const { return accepted_.load(); }

 private:
  SmtpReply Unavailable(const absl::Status& why) {
    Log(absl::StrCat("451: ", why.ToString()));
    return {451, "4.3.0 the message store is unavailable, try again later"};
  }

  // The backlog, read at most every 100 ms (a count over the pending
  // index: it grows past max_backlog only by what the fronts take within
  // those 100 ms).
  absl::StatusOr<bool> OverBacklog() {
    absl::MutexLock lock(&mu_);
    absl::Time now = absl::Now();
    if (now - backlog_read_ > absl::Milliseconds(100)) {
      absl::StatusOr<DbPool::Lease> db = pool_->Acquire(absl::Seconds(2));
      if (!db.ok()) return db.status();
      absl::StatusOr<int64_t> n = InboundBacklog(**db);
      if (!n.ok()) {
        if (absl::IsUnavailable(n.status())) db->Discard();
        return n.status();
      }
      backlog_ = *n;
      backlog_read_ = now;
    }
    return backlog_ >= max_backlog_;
  }

  std::string NewId() {
    absl::MutexLock lock(&mu_);
    return absl::StrFormat("<%016x.%d@%s>", rng_(), ++made_, id_);
  }

  const std::string id_;
  DbPool* const pool_;
  const int64_t max_backlog_;
  std::atomic<int64_t> accepted_{0};
  absl::Mutex mu_;
  absl::Time backlog_read_ = absl::InfinitePast();
  int64_t backlog_ = 0;
  std::mt19937_64 rng_{std::random_device{}()};
  int64_t made_ = 0;
};

int Main() {
  InstallStopSignals();
  std::string zone = absl::GetFlag(FLAGS_zone);
  std::string id = absl::GetFlag(FLAGS_id);
  if (id.empty()) id = absl::StrCat("front-", zone.empty() ? "any" : zone);
  SetLogName(id);
  if (absl::GetFlag(FLAGS_db).empty()) {
    std::fprintf(stderr, "email-front: --db is required\n");
    return 2;
  }
  DbPool pool(absl::GetFlag(FLAGS_db), 16);
  {
    // The schema, once; a front that cannot reach the database yet still
    // starts, and answers 451 until it can.
    absl::StatusOr<DbPool::Lease> db = pool.Acquire(absl::Seconds(5));
    absl::Status s = db.ok() ? EnsureSchema(**db) : db.status();
    if (!s.ok()) Log(absl::StrCat("schema not ensured yet: ", s.ToString()));
  }
  Front front(id, &pool, absl::GetFlag(FLAGS_max_backlog));
  SmtpServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.hostname = id;
  o.max_connections = static_cast<size_t>(absl::GetFlag(FLAGS_max_connections));
  o.limits.max_message =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_message_bytes));
  o.limits.max_recipients =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_recipients));
  o.limits.command_timeout = absl::GetFlag(FLAGS_command_timeout);
  o.limits.data_idle_timeout = absl::GetFlag(FLAGS_data_timeout);
  o.limits.data_total_timeout = absl::GetFlag(FLAGS_data_total_timeout);
  absl::StatusOr<std::unique_ptr<SmtpServer>> server = SmtpServer::Start(
      o, [&](const Envelope& e) { return front.Deliver(e); },
      [](const std::string& rcpt) -> SmtpReply {
        if (!MailboxOf(rcpt).ok()) return {553, "5.1.3 not a mailbox"};
        return {250, "2.1.5 OK"};
      });
  if (!server.ok()) {
    std::fprintf(stderr, "email-front: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", (*server)->address().c_str());
  std::fflush(stdout);
  Log(absl::StrCat("accepting SMTP on ", (*server)->address(), " in zone ",
                   zone));
  while (!WaitForStop(absl::Seconds(10))) {
  }
  (*server)->Stop();
  Log(absl::StrCat("stopped; accepted ", front.accepted(), " messages"));
  return 0;
}

}  // namespace
}  // namespace quorate_email

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return quorate_email::Main();
}
