// quorate::Election and quorate::Lock: coord/campaign.h (the transactions
// and what their answers mean, shared with the simulator) run on the
// caller's thread, with a watch to wait on the candidate before this one
// and another to notice this one's key go.
#include "quorate/election.h"

#include <atomic>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "api/client_internal.h"
#include "coord/campaign.h"
#include "util/mutex.h"
#include "util/serial_executor.h"

namespace quorate {
namespace {

using coord::CampaignKind;

client::KeyValue ToWire(const KeyRecord& r) {
  client::KeyValue kv;
  kv.set_key(r.key);
  kv.set_value(r.value);
  kv.set_create_revision(r.create_revision);
  kv.set_mod_revision(r.mod_revision);
  kv.set_version(r.version);
  kv.set_lease(r.lease);
  return kv;
}

LeaderInfo FromCore(const coord::Leader& l) {
  return LeaderInfo{l.value, l.token, l.lease, l.key};
}

absl::Status SessionOver(uint64_t lease) {
  return absl::FailedPreconditionError(absl::StrFormat(
      "the session (lease %x) is over: expired or revoked; start a new "
      "session to campaign",
      lease));
}

// One session's campaign for one name: what Election and Lock share.
class Campaigner {
 public:
  Campaigner(Client* client, Session* session, CampaignKind kind,
             std::string name, std::string prefix)
      : client_(client),
        session_(session),
        kind_(kind),
        name_(std::move(name)),
        prefix_(std::move(prefix)),
        key_(coord::CampaignKey(prefix_, session->lease())) {}
  ~Campaigner() { (void)Leave(); }

  absl::Status Enter(absl::string_view value, absl::Duration timeout) {
    MutexLock lock(&mu_);
    if (Leads(nullptr)) return absl::OkStatus();
    if (!session_->Valid()) return SessionOver(session_->lease());
    // A resignation whose outcome is unknown is settled first: entered
    // again with the same key, a late copy of it could delete that key
    // after we read that we lead (it names the same token).
    if (entered_) {
      if (absl::Status w = WithdrawLocked(); !w.ok()) return w;
    }
    const absl::Time deadline = timeout == absl::InfiniteDuration()
                                    ? absl::InfiniteFuture()
                                    : absl::Now() + timeout;
    client::TxnResponse r;
    absl::Status s = api::WireTxn(
        client_, coord::EnterTxn(prefix_, key_, value, session_->lease()), &r);
    if (absl::IsNotFound(s)) return SessionOver(session_->lease());
    // Entered, or perhaps (after UNKNOWN, UNAVAILABLE): the withdrawal
    // below, or the next Enter or Leave, removes the key either way.
    entered_ = true;
    if (s.ok() && r.replayed()) {
      s = api::WireTxn(client_, coord::StandingTxn(prefix_, key_), &r);
    }
    while (s.ok()) {
      absl::StatusOr<coord::Standing> st = coord::ReadStanding(r);
      if (!st.ok()) {
        s = st.status();
        break;
      }
      if (!st->present) {
        s = absl::FailedPreconditionError(
            absl::StrCat("this campaign's key ", key_,
                         " is gone: its session ended, or someone deleted it"));
        break;
      }
      token_held_ = st->token;
      if (st->leads) {
        if (!session_->Valid()) {
          s = SessionOver(session_->lease());
          break;
        }
        token_.store(st->token, std::memory_order_relaxed);
        leading_.store(true, std::memory_order_release);
        WatchOwnKey(st->revision);
        return absl::OkStatus();
      }
      s = AwaitDelete(st->predecessor, st->revision, deadline);
      if (s.ok()) {
        s = api::WireTxn(client_, coord::StandingTxn(prefix_, key_), &r);
      }
    }
    // Best effort: a key left behind goes with the session anyway.
    (void)WithdrawLocked();
    return s;
  }

  bool Leads(uint64_t* token) const {
    if (!leading_.load(std::memory_order_acquire)) return false;
    if (!session_->Valid()) return false;
    if (token != nullptr) *token = token_.load(std::memory_order_relaxed);
    return true;
  }

  absl::Status Proclaim(absl::string_view value) {
    MutexLock lock(&mu_);
    if (!Leads(nullptr)) {
      return absl::FailedPreconditionError(
          absl::StrCat("not the leader of '", name_, "': campaign first"));
    }
    client::TxnResponse r;
    absl::Status s = api::WireTxn(
        client_,
        coord::ProclaimTxn(key_, value, session_->lease(), token_held_), &r);
    if (!s.ok()) return s;
    if (!r.succeeded()) {
      leading_.store(false, std::memory_order_release);
      return absl::FailedPreconditionError(absl::StrCat(
          "no longer the leader of '", name_, "': its key ", key_, " is gone"));
    }
    return absl::OkStatus();
  }

  absl::Status Leave() {
    MutexLock lock(&mu_);
    return WithdrawLocked();
  }

  std::string fence_name() const {
    return coord::CampaignFenceName(kind_, name_);
  }

 private:
  // Stops counting on leadership first, then deletes the key (if it is
  // still the one this campaign created).
  absl::Status WithdrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    leading_.store(false, std::memory_order_release);
    StopWatchingOwnKey();
    if (!entered_) return absl::OkStatus();
    client::TxnResponse r;
    const absl::Status s =
        token_held_ != 0
            ? api::WireTxn(client_, coord::ResignTxn(key_, token_held_), &r)
            : api::WireTxn(client_, coord::WithdrawTxn(key_, session_->lease()),
                           &r);
    if (s.ok()) {
      entered_ = false;
      token_held_ = 0;
    }
    return s;
  }

  // Waits until `key` is deleted after `revision`, the deadline passes or
  // the session ends.
  absl::Status AwaitDelete(const std::string& key, uint64_t revision,
                           absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    struct Signal {
      Mutex mu;
      CondVar cv;
      bool fired ABSL_GUARDED_BY(mu) = false;
    };
    auto sig = std::make_shared<Signal>();
    auto fire = [sig] {
      MutexLock l(&sig->mu);
      sig->fired = true;
      sig->cv.SignalAll();
    };
    WatchOptions w;
    w.start_revision = revision + 1;
    w.no_put = true;
    w.on_events = [fire](const std::vector<WatchEvent>& events, uint64_t) {
      if (!events.empty()) fire();  // deletes only: no_put
    };
    // A watch that ended (its revision left the history): look again.
    w.on_end = [fire](const absl::Status&) { fire(); };
    absl::StatusOr<std::unique_ptr<Watcher>> watcher =
        client_->Watch(key, std::move(w));
    if (absl::IsOutOfRange(watcher.status())) return absl::OkStatus();
    if (!watcher.ok()) return watcher.status();
    while (true) {
      {
        MutexLock l(&sig->mu);
        if (sig->fired) return absl::OkStatus();
        // The session's end and the deadline are looked at every 50 ms.
        sig->cv.WaitWithTimeout(
            &sig->mu, std::min(deadline - absl::Now(), absl::Milliseconds(50)));
        if (sig->fired) return absl::OkStatus();
      }
      if (!session_->Valid()) return SessionOver(session_->lease());
      if (absl::Now() >= deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat("'", name_,
                         "' was not won before the timeout; the campaign is "
                         "withdrawn"));
      }
    }
  }

  // A leader learns that its key went (deleted by hand, or its lease
  // revoked): it stops leading then. The watch is started and stopped on
  // the campaign's own thread, off the caller's path (starting one costs
  // a round trip: done inline it made an uncontended acquire 20% slower
  // than etcd's; lock_bench). Each win has a generation, so that an
  // older watch that sees its own campaign's key go (our resignation)
  // cannot end a later win.
  void WatchOwnKey(uint64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const uint64_t gen = gen_.fetch_add(1) + 1;
    watch_thread_.Post([this, gen, revision] {
      own_watch_.reset();
      if (gen_.load() != gen) return;  // left already
      WatchOptions w;
      w.start_revision = revision + 1;
      w.no_put = true;
      w.on_events = [this, gen](const std::vector<WatchEvent>& events,
                                uint64_t) {
        if (!events.empty() && gen_.load() == gen) {
          leading_.store(false, std::memory_order_release);
        }
      };
      absl::StatusOr<std::unique_ptr<Watcher>> watcher =
          client_->Watch(key_, std::move(w));
      // Without it the holder still stops in time for every end the
      // argument covers (its session's): only a delete by hand goes
      // unseen.
      if (watcher.ok()) own_watch_ = *std::move(watcher);
    });
  }
  void StopWatchingOwnKey() {
    gen_.fetch_add(1);
    watch_thread_.Post([this] { own_watch_.reset(); });
  }

  Client* const client_;
  Session* const session_;
  const CampaignKind kind_;
  const std::string name_;
  const std::string prefix_;
  const std::string key_;
  std::atomic<bool> leading_{false};
  std::atomic<uint64_t> token_{0};
  Mutex mu_;  // one call at a time
  bool entered_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t token_held_ ABSL_GUARDED_BY(mu_) = 0;  // our key's, once read
  std::atomic<uint64_t> gen_{0};                  // of the last win (or leave)
  // Used on watch_thread_ only.
  std::unique_ptr<Watcher> own_watch_;
  // Last: destroyed first, after running what is queued (stopping the
  // watch), before what its tasks use goes.
  SerialExecutor watch_thread_{"q-campaign"};
};

absl::StatusOr<std::unique_ptr<Campaigner>> MakeCampaigner(
    Client* client, Session* session, CampaignKind kind,
    absl::string_view name) {
  if (client == nullptr || session == nullptr) {
    return absl::InvalidArgumentError("a client and a session are needed");
  }
  absl::StatusOr<std::string> prefix = coord::CampaignPrefix(kind, name);
  if (!prefix.ok()) return prefix.status();
  return std::make_unique<Campaigner>(client, session, kind, std::string(name),
                                      *std::move(prefix));
}

class ElectionImpl final : public Election {
 public:
  explicit ElectionImpl(std::unique_ptr<Campaigner> c) : c_(std::move(c)) {}
  absl::Status Campaign(absl::string_view value,
                        absl::Duration timeout) override {
    return c_->Enter(value, timeout);
  }
  bool IsLeader(uint64_t* token) const override { return c_->Leads(token); }
  absl::Status Proclaim(absl::string_view value) override {
    return c_->Proclaim(value);
  }
  absl::Status Resign() override { return c_->Leave(); }
  std::string fence_name() const override { return c_->fence_name(); }

 private:
  std::unique_ptr<Campaigner> c_;
};

class LockImpl final : public Lock {
 public:
  explicit LockImpl(std::unique_ptr<Campaigner> c) : c_(std::move(c)) {}
  absl::Status Acquire(absl::Duration timeout) override {
    return c_->Enter("", timeout);
  }
  bool Held(uint64_t* token) const override { return c_->Leads(token); }
  absl::Status Release() override { return c_->Leave(); }
  std::string fence_name() const override { return c_->fence_name(); }

 private:
  std::unique_ptr<Campaigner> c_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Election>> Election::Create(
    Client* client, Session* session, absl::string_view name) {
  absl::StatusOr<std::unique_ptr<Campaigner>> c =
      MakeCampaigner(client, session, CampaignKind::kElection, name);
  if (!c.ok()) return c.status();
  return std::make_unique<ElectionImpl>(*std::move(c));
}

absl::StatusOr<std::unique_ptr<Lock>> Lock::Create(Client* client,
                                                   Session* session,
                                                   absl::string_view name) {
  absl::StatusOr<std::unique_ptr<Campaigner>> c =
      MakeCampaigner(client, session, CampaignKind::kLock, name);
  if (!c.ok()) return c.status();
  return std::make_unique<LockImpl>(*std::move(c));
}

absl::StatusOr<LeaderInfo> ElectionLeader(Client* client,
                                          absl::string_view name) {
  absl::StatusOr<std::string> prefix =
      coord::CampaignPrefix(CampaignKind::kElection, name);
  if (!prefix.ok()) return prefix.status();
  RangeOptions o;
  o.range_end = PrefixEnd(*prefix);
  o.sort_by = RangeOptions::SortBy::kCreateRevision;
  o.limit = 1;
  absl::StatusOr<RangeResult> r = client->Range(*prefix, o);
  if (!r.ok()) return r.status();
  if (r->kvs.empty()) {
    return absl::NotFoundError(
        absl::StrCat("election '", name, "' has no leader"));
  }
  const KeyRecord& k = r->kvs.front();
  return LeaderInfo{k.value, k.create_revision, k.lease, k.key};
}

absl::StatusOr<std::unique_ptr<Watcher>> ObserveElection(
    Client* client, absl::string_view name, ObserveOptions options) {
  absl::StatusOr<std::string> prefix =
      coord::CampaignPrefix(CampaignKind::kElection, name);
  if (!prefix.ok()) return prefix.status();
  // Every candidate as of one revision, then every event after it.
  RangeOptions o;
  o.range_end = PrefixEnd(*prefix);
  absl::StatusOr<RangeResult> all = api::RangeAll(client, *prefix, o);
  if (!all.ok()) return all.status();
  google::protobuf::RepeatedPtrField<client::KeyValue> kvs;
  for (const KeyRecord& k : all->kvs) *kvs.Add() = ToWire(k);
  auto watch = std::make_shared<coord::LeaderWatch>();
  const std::optional<coord::Leader> first = watch->Reset(kvs);
  auto on_leader = std::move(options.on_leader);
  auto report = [on_leader](const std::optional<coord::Leader>& l) {
    if (on_leader) {
      on_leader(l.has_value() ? std::optional<LeaderInfo>(FromCore(*l))
                              : std::nullopt);
    }
  };
  report(first);
  WatchOptions w;
  w.range_end = o.range_end;
  w.start_revision = all->revision + 1;
  // One call per revision (client.h): each revision's leader is seen.
  w.on_events = [watch, report](const std::vector<WatchEvent>& events,
                                uint64_t) {
    if (events.empty()) return;  // progress
    std::vector<client::WatchEvent> wire(events.size());
    for (size_t i = 0; i < events.size(); ++i) {
      wire[i].set_type(events[i].type == WatchEvent::Type::kPut
                           ? client::WatchEvent::PUT
                           : client::WatchEvent::DELETE);
      *wire[i].mutable_kv() = ToWire(events[i].kv);
    }
    std::optional<coord::Leader> now;
    if (watch->Revision(wire, &now)) report(now);
  };
  w.on_end = std::move(options.on_end);
  return client->Watch(*prefix, std::move(w));
}

}  // namespace quorate
