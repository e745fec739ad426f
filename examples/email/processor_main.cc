// email-processor: a processor of the email example. It holds a Quorate
// session, joins the shard group "mailboxes" (creating it if need be), and
// for each shard it owns:
// - inbound: takes the shard's unprocessed messages, threads each into a
//   conversation and queues its auto-reply, in one transaction fenced by
//   the shard's epoch (store.h, ProcessInbound);
// - outbound: reads the shard's pending replies (no transaction held),
//   sends them to --smarthost with a deadline each (no database connection
//   held meanwhile), then marks them sent in a fenced transaction.
// It asks Owns(shard) before each message and each send; it starts nothing
// while its session is in jeopardy, and nothing inbound (outbound) while
// the workload switch inbound-email (outbound-email) is paused. On
// on_revoke it finishes the message in hand and releases the shard.
//
//   email-processor --id=P --zone=Z --endpoints=HOST:PORT,... --db=DB
//                   [--smarthost=HOST:PORT]
//
// Prints a status line on stdout every --status_interval. SIGTERM leaves
// the group by plan (every shard revoked, finished and released), then
// ends the session.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "lib/db.h"
#include "lib/message.h"
#include "lib/runtime.h"
#include "lib/smtp_client.h"
#include "lib/store.h"
#include "quorate/client.h"
#include "quorate/shards.h"
#include "quorate/workload.h"

ABSL_FLAG(std::string, id, "", "this processor's name");
ABSL_FLAG(std::string, zone, "", "this processor's zone");
ABSL_FLAG(std::string, endpoints, "", "HOST:PORT of Quorate members");
ABSL_FLAG(std::string, db, "", "SQLite file or postgresql:// URL");
ABSL_FLAG(std::string, smarthost, "",
          "HOST:PORT to send replies to (none: replies stay queued)");
ABSL_FLAG(absl::Duration, session_ttl, absl::Seconds(4),
          "the session's TTL: how long a silent processor keeps its shards");
ABSL_FLAG(int64_t, batch, 32, "messages per fenced transaction at most");
ABSL_FLAG(int64_t, outbox_limit, 256,
          "pending replies per shard at most; at the limit inbound waits");
ABSL_FLAG(absl::Duration, poll_interval, absl::Milliseconds(20),
          "how often an idle processor looks for new mail");
ABSL_FLAG(absl::Duration, send_timeout, absl::Seconds(10),
          "deadline of one SMTP send");
ABSL_FLAG(absl::Duration, status_interval, absl::Seconds(1),
          "how often to print a status line");
ABSL_FLAG(std::string, event_log, "",
          "append machine-readable events to this file (JSON lines: session, "
          "jeopardy, safe, expired, assigned, revoked, released, refused, "
          "send), for the incident replays");
ABSL_FLAG(bool, unsafe_skip_fence, false,
          "tests only: write without the fence (the audit must catch it)");

namespace quorate_email {
namespace {

struct Counters {
  std::atomic<int64_t> processed{0};
  std::atomic<int64_t> quarantined{0};
  std::atomic<int64_t> sent{0};
  std::atomic<int64_t> send_failures{0};
  std::atomic<int64_t> refusals{0};
  std::atomic<int64_t> outbox_full{0};
};

// One session's worth of work: everything here ends with the session.
class Worker {
 public:
  Worker(std::string id, DbPool* pool, quorate::Session* session,
         quorate::WorkloadSwitch* inbound, quorate::WorkloadSwitch* outbound,
         Counters* counters)
      : id_(std::move(id)),
        pool_(pool),
        session_(session),
        inbound_(inbound),
        outbound_(outbound),
        counters_(counters) {}

  ~Worker() { Stop(); }

  // The group's callbacks can run before Join returns: a shard revoked
  // before then is released here.
  void Start(quorate::ShardGroup* group) {
    std::vector<uint32_t> idle;
    {
      std::lock_guard<std::mutex> lock(mu_);
      group_ = group;
      for (uint32_t shard : revoking_) {
        if (busy_[shard] == 0) idle.push_back(shard);
      }
      for (uint32_t shard : idle) {
        revoking_.erase(shard);
        released_.insert(shard);
      }
    }
    for (uint32_t shard : idle) {
      Log(absl::StrCat("shard ", shard, " revoked while joining: released"));
      Release(shard);
    }
    threads_.emplace_back([this] { InboundLoop(); });
    threads_.emplace_back([this] { OutboundLoop(); });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      wake_.notify_all();
    }
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  // The group's callbacks (on its thread).
  void Assigned(uint32_t shard, uint64_t epoch) {
    Log(absl::StrCat("owns shard ", shard, " at epoch ", epoch));
    Event("assigned",
          absl::StrCat("\"shard\": ", shard, ", \"epoch\": ", epoch));
    std::lock_guard<std::mutex> lock(mu_);
    revoking_.erase(shard);
    released_.erase(shard);
    wake_.notify_all();
  }
  void Revoked(uint32_t shard) {
    bool release = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      revoking_.insert(shard);
      // Before Start there is no group to release to: Start does it.
      release = group_ != nullptr && busy_[shard] == 0;
      if (release) {
        revoking_.erase(shard);
        released_.insert(shard);
      }
      wake_.notify_all();
    }
    Log(absl::StrCat("shard ", shard, " revoked",
                     release ? ": idle, released" : ": finishing it first"));
    Event("revoked", absl::StrCat("\"shard\": ", shard));
    if (release) Release(shard);
  }
  void Lost() {
    Log("session over: owns nothing");
    Event("lost");
    std::lock_guard<std::mutex> lock(mu_);
    wake_.notify_all();
  }

  std::string Status() const {
    return absl::StrCat(
        "owned=", absl::StrJoin(group_->Owned(), ","),
        " inbound=", inbound_->Running() ? "running" : "paused",
        " outbound=", outbound_->Running() ? "running" : "paused",
        " jeopardy=", session_->InJeopardy() ? 1 : 0);
  }

  // This processor's card on the members' /ui page (a flat JSON object
  // under quorate/dashboard/email/ID; "lease" names its shards there).
  std::string Card(const std::string& zone) const {
    return absl::StrCat(
        "{\"name\": \"", JsonEscape(id_), "\", \"zone\": \"", JsonEscape(zone),
        "\", \"lease\": \"", absl::Hex(session_->lease()), "\", \"shards\": \"",
        absl::StrJoin(group_->Owned(), ","),
        "\", \"processed\": ", counters_->processed.load(),
        ", \"quarantined\": ", counters_->quarantined.load(),
        ", \"sent\": ", counters_->sent.load(),
        ", \"fence_refusals\": ", counters_->refusals.load(),
        ", \"inbound\": \"", inbound_->Running() ? "running" : "paused",
        "\", \"outbound\": \"", outbound_->Running() ? "running" : "paused",
        "\", \"jeopardy\": ", session_->InJeopardy() ? "true" : "false", "}");
  }

 private:
  void Release(uint32_t shard) {
    Event("released", absl::StrCat("\"shard\": ", shard));
    absl::Status s = group_->Release(shard);
    if (!s.ok()) Log(absl::StrCat("release ", shard, ": ", s.ToString()));
  }

  // A thread starts work on `shard` (false: it is being revoked, or the
  // processor stops) and ends it; the last to end a revoked shard's work
  // releases it.
  bool Enter(uint32_t shard) {
    std::lock_guard<std::mutex> lock(mu_);
    // Released (or being released): a thread that saw Owns() true just
    // before must not start a turn on it.
    if (stop_ || revoking_.count(shard) || released_.count(shard)) {
      return false;
    }
    ++busy_[shard];
    return true;
  }
  void Exit(uint32_t shard) {
    bool release = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      release = --busy_[shard] == 0 && revoking_.erase(shard) > 0;
      if (release) released_.insert(shard);
    }
    if (release) {
      Log(absl::StrCat("shard ", shard, " finished: released"));
      Release(shard);
    }
  }
  bool Revoking(uint32_t shard) {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_ || revoking_.count(shard) > 0;
  }
  // May a new message of `shard` start now?
  bool MayStart(uint32_t shard, quorate::WorkloadSwitch* sw, uint64_t* epoch) {
    uint64_t e = 0;
    bool ok = group_->Owns(shard, &e) && !session_->InJeopardy() &&
              sw->Running() && !Revoking(shard);
    if (ok && epoch != nullptr) *epoch = e;
    return ok;
  }
  void Idle() {
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(
        lock, absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_poll_interval)),
        [&] { return stop_; });
  }
  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }

  void InboundLoop() {
    while (!stopping()) {
      bool busy = false;
      for (uint32_t shard : group_->Owned()) {
        uint64_t epoch = 0;
        if (!MayStart(shard, inbound_, &epoch) || !Enter(shard)) continue;
        busy |= InboundTurn(shard, epoch);
        Exit(shard);
      }
      if (!busy) Idle();
    }
  }

  // One fenced transaction on `shard`; true if it did something.
  bool InboundTurn(uint32_t shard, uint64_t epoch) {
    absl::StatusOr<DbPool::Lease> db = pool_->Acquire(absl::Seconds(5));
    if (!db.ok()) {
      Log(absl::StrCat("inbound: ", db.status().ToString()));
      return false;
    }
    ShardTurn turn;
    turn.shard = shard;
    turn.epoch = epoch;
    turn.processor = id_;
    turn.batch = static_cast<size_t>(absl::GetFlag(FLAGS_batch));
    turn.outbox_limit = static_cast<size_t>(absl::GetFlag(FLAGS_outbox_limit));
    turn.skip_fence = absl::GetFlag(FLAGS_unsafe_skip_fence);
    turn.may_start = [&] {
      uint64_t now_epoch = 0;
      return MayStart(shard, inbound_, &now_epoch) && now_epoch == epoch;
    };
    absl::StatusOr<TurnResult> r = ProcessInbound(**db, turn);
    if (!r.ok()) {
      if (absl::IsUnavailable(r.status())) db->Discard();
      Log(absl::StrCat("inbound shard ", shard, ": ", r.status().ToString()));
      return false;
    }
    counters_->processed += static_cast<int64_t>(r->processed);
    counters_->quarantined += static_cast<int64_t>(r->quarantined);
    if (r->refused) {
      counters_->refusals += 1;
      Log(absl::StrCat("inbound shard ", shard, ": the fence refused epoch ",
                       epoch, "; rolled back"));
      Event("refused", absl::StrCat("\"shard\": ", shard, ", \"epoch\": ",
                                    epoch, ", \"what\": \"inbound\""));
    }
    if (r->outbox_full) counters_->outbox_full += 1;
    return r->processed + r->quarantined > 0;
  }

  void OutboundLoop() {
    std::string smarthost = absl::GetFlag(FLAGS_smarthost);
    if (smarthost.empty()) {
      Log("no --smarthost: replies stay in the outbox");
      return;
    }
    SmtpClient smtp(smarthost, id_);
    while (!stopping()) {
      bool busy = false;
      for (uint32_t shard : group_->Owned()) {
        uint64_t epoch = 0;
        if (!MayStart(shard, outbound_, &epoch) || !Enter(shard)) continue;
        busy |= OutboundTurn(&smtp, shard, epoch);
        Exit(shard);
      }
      if (!busy) Idle();
    }
  }

  bool OutboundTurn(SmtpClient* smtp, uint32_t shard, uint64_t epoch) {
    std::vector<OutboxMessage> pending;
    {
      absl::StatusOr<DbPool::Lease> db = pool_->Acquire(absl::Seconds(5));
      if (!db.ok()) return false;
      absl::StatusOr<std::vector<OutboxMessage>> r =
          PendingReplies(**db, shard, 16);
      if (!r.ok()) {
        if (absl::IsUnavailable(r.status())) db->Discard();
        Log(absl::StrCat("outbound shard ", shard, ": ",
                         r.status().ToString()));
        return false;
      }
      pending = std::move(*r);
    }  // the connection goes back before any SMTP
    std::vector<std::string> sent, failed;
    for (const OutboxMessage& m : pending) {
      auto still_mine = [&] {
        uint64_t now_epoch = 0;
        return MayStart(shard, outbound_, &now_epoch) && now_epoch == epoch;
      };
      if (!still_mine()) break;
      // No connection is held across the SMTP wait (the pool's count for
      // this thread goes in the event, for the replays to check).
      const int held = DbPool::HeldByThisThread();
      const absl::Time start = absl::Now();
      absl::Status s =
          smtp->Send(m.mail_from, {m.rcpt}, m.body,
                     absl::GetFlag(FLAGS_send_timeout), still_mine);
      Event("send",
            absl::StrCat("\"shard\": ", shard, ", \"ms\": ",
                         absl::ToInt64Milliseconds(absl::Now() - start),
                         ", \"result\": \"",
                         s.ok() ? "ok" : absl::StatusCodeToString(s.code()),
                         "\", \"db_connections_held\": ", held));
      if (absl::IsCancelled(s)) {
        Log(absl::StrCat("send ", m.message_id,
                         " stopped: paused, in jeopardy or shard moving"));
        break;
      }
      if (absl::IsFailedPrecondition(s)) {
        // Refused for good (5xx): marked failed, so that one bad reply
        // does not hold up its shard's outbox (and then its inbound).
        counters_->send_failures += 1;
        Log(absl::StrCat("send ", m.message_id, " refused: ", s.ToString()));
        failed.push_back(m.message_id);
        continue;
      }
      if (!s.ok()) {
        counters_->send_failures += 1;
        Log(absl::StrCat("send ", m.message_id, ": ", s.ToString()));
        break;  // the smarthost is in trouble: try again next turn
      }
      sent.push_back(m.message_id);
    }
    if (sent.empty() && failed.empty()) return false;
    // A crash here, between the sends and the mark, sends them again
    // later: at-least-once, with the same Message-ID.
    absl::StatusOr<DbPool::Lease> db = pool_->Acquire(absl::Seconds(5));
    if (!db.ok()) return false;
    ShardTurn turn;
    turn.shard = shard;
    turn.epoch = epoch;
    turn.processor = id_;
    turn.skip_fence = absl::GetFlag(FLAGS_unsafe_skip_fence);
    absl::StatusOr<bool> marked = MarkSent(**db, turn, sent);
    if (marked.ok() && *marked && !failed.empty()) {
      marked = MarkSent(**db, turn, failed, "failed");
    }
    if (!marked.ok()) {
      if (absl::IsUnavailable(marked.status())) db->Discard();
      Log(absl::StrCat("mark sent: ", marked.status().ToString()));
      return false;
    }
    if (!*marked) {
      counters_->refusals += 1;
      Log(absl::StrCat("outbound shard ", shard, ": the fence refused epoch ",
                       epoch, "; its new owner sends them again"));
      Event("refused", absl::StrCat("\"shard\": ", shard, ", \"epoch\": ",
                                    epoch, ", \"what\": \"outbound\""));
      return false;
    }
    counters_->sent += static_cast<int64_t>(sent.size());
    return true;
  }

  const std::string id_;
  DbPool* const pool_;
  quorate::Session* const session_;
  quorate::WorkloadSwitch* const inbound_;
  quorate::WorkloadSwitch* const outbound_;
  Counters* const counters_;
  quorate::ShardGroup* group_ = nullptr;  // set once, by Start (under mu_)
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::set<uint32_t> revoking_;
  std::set<uint32_t> released_;  // until assigned again
  std::map<uint32_t, int> busy_;
  std::vector<std::thread> threads_;
};

std::string CounterText(const Counters& c) {
  return absl::StrCat(
      "processed=", c.processed.load(), " quarantined=", c.quarantined.load(),
      " sent=", c.sent.load(), " send_failures=", c.send_failures.load(),
      " refusals=", c.refusals.load(), " outbox_full=", c.outbox_full.load());
}

// One session: joins, works until the session ends or a stop; on a stop,
// leaves by plan. Returns false if it could not start.
bool RunSession(const std::string& id, const std::string& zone,
                quorate::Client* client, DbPool* pool, Counters* counters) {
  quorate::SessionOptions so;
  so.ttl = absl::GetFlag(FLAGS_session_ttl);
  so.on_jeopardy = [] {
    Log("session in jeopardy: starting nothing new");
    Event("jeopardy");
  };
  so.on_safe = [] {
    Log("session safe again: resuming");
    Event("safe");
  };
  so.on_expired = [] {
    Log("session expired");
    Event("expired");
  };
  absl::StatusOr<std::unique_ptr<quorate::Session>> session =
      client->StartSession(so);
  if (!session.ok()) {
    Log(absl::StrCat("session: ", session.status().ToString()));
    return false;
  }
  absl::Status s = quorate::CreateShardGroup(client, kGroup, kShards);
  if (!s.ok()) {
    Log(absl::StrCat("create group ", kGroup, ": ", s.ToString()));
    return false;
  }
  auto inbound = quorate::WorkloadSwitch::Create(client, session->get(),
                                                 "inbound-email", {});
  auto outbound = quorate::WorkloadSwitch::Create(client, session->get(),
                                                  "outbound-email", {});
  if (!inbound.ok() || !outbound.ok()) {
    Log(absl::StrCat(
        "workload switches: ",
        (inbound.ok() ? outbound.status() : inbound.status()).ToString()));
    return false;
  }
  Worker worker(id, pool, session->get(), inbound->get(), outbound->get(),
                counters);
  quorate::ShardGroupOptions go;
  go.zone = zone;
  go.on_assigned = [&](uint32_t shard, uint64_t epoch) {
    worker.Assigned(shard, epoch);
  };
  go.on_revoke = [&](uint32_t shard) { worker.Revoked(shard); };
  go.on_lost = [&] { worker.Lost(); };
  auto group = quorate::ShardGroup::Join(client, session->get(), kGroup, go);
  if (!group.ok()) {
    Log(absl::StrCat("join ", kGroup, ": ", group.status().ToString()));
    return false;
  }
  Log(absl::StrCat("joined ", kGroup, " with session ",
                   absl::Hex((*session)->lease())));
  Event("session",
        absl::StrCat("\"lease\": \"", absl::Hex((*session)->lease()), "\""));
  worker.Start(group->get());
  std::shared_future<void> done = (*session)->Done();
  absl::Duration every = absl::GetFlag(FLAGS_status_interval);
  absl::Time next_card = absl::Now();
  while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (WaitForStop(every)) break;
    std::printf("status id=%s %s %s\n", id.c_str(), worker.Status().c_str(),
                CounterText(*counters).c_str());
    std::fflush(stdout);
    if (absl::Now() >= next_card) {
      // Attached to the session's lease: it goes when the processor does.
      client
          ->Put(absl::StrCat("quorate/dashboard/email/", id), worker.Card(zone),
                (*session)->lease())
          .IgnoreError();
      next_card = absl::Now() + absl::Seconds(1);
    }
  }
  if (StopRequested() && (*session)->Valid()) {
    // Leave by plan: each shard is revoked, finished and released; the
    // next owners take them as soon as each is released.
    Log("leaving the group");
    s = (*group)->Leave();
    if (!s.ok()) Log(absl::StrCat("leave: ", s.ToString()));
    absl::Time limit = absl::Now() + absl::Seconds(15);
    while (!(*group)->Owned().empty() && absl::Now() < limit &&
           (*session)->Valid()) {
      absl::SleepFor(absl::Milliseconds(20));  // polls a local state
    }
  }
  worker.Stop();
  group->reset();
  if (StopRequested()) {
    s = (*session)->Close();
    if (!s.ok()) Log(absl::StrCat("closing the session: ", s.ToString()));
  }
  return true;
}

int Main() {
  InstallStopSignals();
  InitCurl();
  std::string id = absl::GetFlag(FLAGS_id);
  std::string zone = absl::GetFlag(FLAGS_zone);
  if (id.empty() || absl::GetFlag(FLAGS_db).empty() ||
      absl::GetFlag(FLAGS_endpoints).empty()) {
    std::fprintf(stderr,
                 "email-processor: --id, --db and --endpoints are required\n");
    return 2;
  }
  SetLogName(id);
  OpenEventLog(absl::GetFlag(FLAGS_event_log), id);
  Event("start", absl::StrCat("\"zone\": \"", JsonEscape(zone), "\""));
  DbPool pool(absl::GetFlag(FLAGS_db), 4);
  while (!StopRequested()) {
    absl::StatusOr<DbPool::Lease> db = pool.Acquire(absl::Seconds(5));
    absl::Status s = db.ok() ? EnsureSchema(**db) : db.status();
    if (s.ok()) break;
    Log(absl::StrCat("database: ", s.ToString(), "; trying again"));
    WaitForStop(absl::Seconds(1));
  }
  quorate::ClientOptions co;
  co.endpoints =
      absl::StrSplit(absl::GetFlag(FLAGS_endpoints), ',', absl::SkipEmpty());
  absl::StatusOr<std::unique_ptr<quorate::Client>> client =
      quorate::Client::Create(co);
  if (!client.ok()) {
    std::fprintf(stderr, "email-processor: %s\n",
                 client.status().ToString().c_str());
    return 2;
  }
  Counters counters;
  while (!StopRequested()) {
    // A session that ends (expired while cut off) is followed by a new
    // one: the processor rejoins and gets shards again.
    if (!RunSession(id, zone, client->get(), &pool, &counters)) {
      WaitForStop(absl::Milliseconds(500));
    }
  }
  Log(absl::StrCat("stopped: ", CounterText(counters)));
  return 0;
}

}  // namespace
}  // namespace quorate_email

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return quorate_email::Main();
}
