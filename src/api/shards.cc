// quorate::ShardGroup (quorate/shards.h): a processor's view of a shard
// group, kept from a read of the group's keys and a watch from the
// revision after it (coord/shard_group.h, KEYS).
#include "quorate/shards.h"

#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/client_internal.h"
#include "coord/kv.h"
#include "coord/shard_group.h"
#include "coord/shard_view.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/serial_executor.h"

namespace quorate {
namespace {

constexpr absl::Duration kMonitorEvery = absl::Milliseconds(20);
constexpr uint64_t kRetryReleasesEvery = 50;  // monitor rounds: 1 s
constexpr int64_t kMaxResumeBackoffMs = 5000;

uint64_t LeaseOf(const std::string& id) {
  uint64_t lease = 0;
  return absl::SimpleHexAtoi(id, &lease) ? lease : 0;
}

// Reads the group's keys: its config, shards and members. NOT_FOUND
// without a config.
struct GroupRead {
  coord::ShardGroupConfig config;
  std::vector<coord::ShardState> shards;
  std::map<std::string, std::string> zones;  // by processor id
  uint64_t revision = 0;
};

absl::StatusOr<GroupRead> ReadGroup(Client* client, absl::string_view name) {
  absl::StatusOr<std::string> prefix = coord::ShardGroupPrefix(name);
  if (!prefix.ok()) return prefix.status();
  RangeOptions o;
  o.range_end = coord::PrefixEnd(*prefix);
  absl::StatusOr<RangeResult> all = api::RangeAll(client, *prefix, o);
  if (!all.ok()) return all.status();
  GroupRead out;
  out.revision = all->revision;
  bool have_config = false;
  const std::string config_key = coord::ShardConfigKey(*prefix);
  const std::string member_head = coord::ShardMemberKey(*prefix, "");
  for (const KeyRecord& kv : all->kvs) {
    if (kv.key == config_key) {
      for (absl::string_view field : absl::StrSplit(kv.value, ' ')) {
        std::pair<std::string, std::string> f = absl::StrSplit(field, '=');
        int64_t v = 0;
        if (!absl::SimpleAtoi(f.second, &v)) continue;
        if (f.first == "shards") out.config.shards = static_cast<uint32_t>(v);
        if (f.first == "drain_ms") out.config.drain_ms = v;
      }
      have_config = true;
    } else if (std::optional<uint32_t> s = coord::ShardOfKey(*prefix, kv.key)) {
      absl::StatusOr<coord::ShardState> st = coord::ParseShardState(kv.value);
      if (!st.ok()) return st.status();
      if (*s >= out.shards.size()) out.shards.resize(*s + 1);
      out.shards[*s] = *std::move(st);
    } else if (kv.key.rfind(member_head, 0) == 0) {
      const std::vector<std::string> f = absl::StrSplit(kv.value, ' ');
      out.zones[kv.key.substr(member_head.size())] =
          f.empty() || f[0] == "-" ? "" : f[0];
    }
  }
  if (!have_config) {
    return absl::NotFoundError(
        absl::StrCat("there is no shard group '", name, "'"));
  }
  out.shards.resize(out.config.shards);
  return out;
}

class ShardGroupImpl final : public ShardGroup {
 public:
  ShardGroupImpl(Client* client, Session* session, std::string name,
                 std::string prefix, ShardGroupOptions options,
                 const GroupRead& read)
      : client_(client),
        session_(session),
        name_(std::move(name)),
        prefix_(std::move(prefix)),
        options_(std::move(options)),
        view_(coord::KvStore::ShardProcessorId(session->lease()),
              read.config.shards,
              coord::ShardDrainWindowNs(
                  read.config.drain_ms, session->max_clock_drift(),
                  absl::ToInt64Nanoseconds(session->margin()))) {
    MutexLock lock(&mu_);
    for (uint32_t s = 0; s < view_.shard_count() && s < read.shards.size();
         ++s) {
      Update(s, read.shards[s], /*at_start=*/true);
    }
  }

  ~ShardGroupImpl() override {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    stop_.SignalAll();
    std::unique_ptr<Watcher> watcher;
    {
      MutexLock lock(&watch_mu_);
      watch_closed_ = true;
      watcher = std::move(watcher_);
    }
    if (watcher != nullptr) watcher->Cancel();
    if (monitor_.joinable()) monitor_.join();
  }

  absl::Status Start(uint64_t revision) {
    absl::StatusOr<std::unique_ptr<Watcher>> watcher = NewWatch(revision);
    if (!watcher.ok()) return watcher.status();
    {
      MutexLock lock(&watch_mu_);
      watcher_ = *std::move(watcher);
    }
    monitor_ = std::thread([this] { Monitor(); });
    return absl::OkStatus();
  }

  bool Owns(uint32_t shard, uint64_t* epoch) const override {
    const uint64_t e = view_.Owns(shard, BootTimeNowNs());
    if (e == 0 || !session_->Valid()) return false;
    if (epoch != nullptr) *epoch = e;
    return true;
  }

  absl::Status Release(uint32_t shard) override {
    if (shard >= view_.shard_count()) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard ", shard, " is out of range (the group has ",
                       view_.shard_count(), ")"));
    }
    uint64_t epoch;
    {
      MutexLock lock(&mu_);
      epoch = view_.TakeRelease(shard);  // Owns() is false now
    }
    if (epoch == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", shard, " of group '", name_, "' is not owned here"));
    }
    absl::Status s = Send(shard, epoch, /*ack=*/false);
    if (s.ok() || absl::IsFailedPrecondition(s)) {
      MutexLock lock(&mu_);
      view_.ReleaseDone(shard, epoch);
    }
    return s;
  }

  absl::Status Leave() override {
    client::ShardRequest req;
    req.set_group(name_);
    req.mutable_leave()->set_lease(session_->lease());
    client::ShardResponse resp;
    return api::WireShard(client_, std::move(req), &resp);
  }

  std::vector<uint32_t> Owned() const override {
    std::vector<uint32_t> out;
    for (uint32_t s = 0; s < view_.shard_count(); ++s) {
      if (Owns(s, nullptr)) out.push_back(s);
    }
    return out;
  }

  uint32_t shard_count() const override { return view_.shard_count(); }

 private:
  // The watch of the group's shard keys after `revision`. If it ends (its
  // revision left the members' history while it was cut off or slow), the
  // view is read again and a new watch started (Resume): until then the
  // processor keeps what it owns safely, but would acknowledge no
  // revocation, so planned moves would wait for its session's end.
  absl::StatusOr<std::unique_ptr<Watcher>> NewWatch(uint64_t revision) {
    WatchOptions w;
    w.start_revision = revision + 1;
    const std::string shards = absl::StrCat(prefix_, "shard/");
    w.range_end = coord::PrefixEnd(shards);
    w.on_events = [this](const std::vector<WatchEvent>& events, uint64_t) {
      MutexLock lock(&mu_);
      for (const WatchEvent& e : events) {
        std::optional<uint32_t> s = coord::ShardOfKey(prefix_, e.kv.key);
        if (!s.has_value() || e.type != WatchEvent::Type::kPut) continue;
        absl::StatusOr<coord::ShardState> st =
            coord::ParseShardState(e.kv.value);
        if (st.ok()) Update(*s, *st, /*at_start=*/false);
      }
    };
    w.on_end = [this](const absl::Status& why) {
      if (!why.ok()) resume_.Post([this] { Resume(); });
    };
    return client_->Watch(shards, std::move(w));
  }

  // Reads the group again and watches from there, until it works or the
  // group is closed. The read continues the view: an acknowledged
  // revocation in it was seen here (only this processor acknowledges), so
  // its deadline is already set.
  void Resume() {
    for (int64_t backoff_ms = 100;;
         backoff_ms = std::min<int64_t>(backoff_ms * 2, kMaxResumeBackoffMs)) {
      {
        MutexLock lock(&mu_);
        if (stopping_) return;
      }
      absl::StatusOr<GroupRead> read = ReadGroup(client_, name_);
      if (read.ok()) {
        {
          MutexLock lock(&mu_);
          for (uint32_t s = 0;
               s < view_.shard_count() && s < read->shards.size(); ++s) {
            Update(s, read->shards[s], /*at_start=*/false);
          }
        }
        absl::StatusOr<std::unique_ptr<Watcher>> watcher =
            NewWatch(read->revision);
        if (watcher.ok()) {
          std::unique_ptr<Watcher> done = *std::move(watcher);
          {
            MutexLock lock(&watch_mu_);
            if (!watch_closed_) std::swap(done, watcher_);
          }
          if (done != nullptr) done->Cancel();  // the ended one (or unused)
          return;
        }
      }
      MutexLock lock(&mu_);
      if (!stopping_) {
        stop_.WaitWithTimeout(&mu_, absl::Milliseconds(backoff_ms));
      }
    }
  }

  absl::Status Send(uint32_t shard, uint64_t epoch, bool ack) {
    client::ShardRequest req;
    req.set_group(name_);
    client::ShardRelease* r = req.mutable_release();
    r->set_lease(session_->lease());
    r->set_shard(shard);
    r->set_epoch(epoch);
    r->set_ack(ack);
    client::ShardResponse resp;
    return api::WireShard(client_, std::move(req), &resp);
  }

  // A shard's new state, from the first read or the watch (its thread).
  void Update(uint32_t s, const coord::ShardState& st, bool at_start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const coord::ShardView::Change c =
        view_.Update(s, st, at_start, BootTimeNowNs());
    if (c.assigned != 0 && options_.on_assigned) {
      callbacks_.Post(
          [this, s, e = c.assigned] { options_.on_assigned(s, e); });
    }
    if (c.revoke_epoch != 0) {
      if (options_.on_revoke) {
        callbacks_.Post([this, s] { options_.on_revoke(s); });
      }
      acks_.Post(
          [this, s, e = c.revoke_epoch] { (void)Send(s, e, /*ack=*/true); });
    }
  }

  // Releases shards whose drain deadline passed here, and reports the
  // session's end.
  void Monitor() {
    std::shared_future<void> done = session_->Done();
    while (true) {
      {
        MutexLock lock(&mu_);
        if (stopping_) return;
        stop_.WaitWithTimeout(&mu_, kMonitorEvery);
        if (stopping_) return;
      }
      if (done.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
        {
          MutexLock lock(&mu_);
          view_.DropAll();
        }
        if (options_.on_lost) callbacks_.Post([this] { options_.on_lost(); });
        return;
      }
      std::vector<uint32_t> due;
      {
        MutexLock lock(&mu_);
        due = view_.Due(BootTimeNowNs());
        // A release that failed (the cluster was unreachable) is sent
        // again, or the shard would wait for the session's end.
        if (++rounds_ % kRetryReleasesEvery == 0) {
          for (const auto& [s, epoch] : view_.PendingReleases()) {
            due.push_back(s);
          }
        }
      }
      for (uint32_t s : due) (void)Release(s);
    }
  }

  Client* const client_;
  Session* const session_;
  const std::string name_;
  const std::string prefix_;
  const ShardGroupOptions options_;
  Mutex mu_;
  CondVar stop_;
  // Owns() reads it without mu_ (atomics); every other call holds mu_.
  coord::ShardView view_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t rounds_ ABSL_GUARDED_BY(mu_) = 0;  // of the monitor
  // Declared after what their tasks use, so destroyed (and drained) first.
  SerialExecutor acks_{"q-shard-acks"};
  SerialExecutor callbacks_{"q-shards"};
  Mutex watch_mu_;
  std::unique_ptr<Watcher> watcher_ ABSL_GUARDED_BY(watch_mu_);
  bool watch_closed_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread monitor_;
  // Declared last: drained first, while everything Resume() uses lives.
  SerialExecutor resume_{"q-shard-watch"};
};

}  // namespace

absl::Status CreateShardGroup(Client* client, absl::string_view name,
                              uint32_t shards, const ShardGroupLimits& limits) {
  if (absl::Status s = coord::CheckNewShardGroupName(name); !s.ok()) {
    return s;
  }
  client::ShardRequest req;
  req.set_group(std::string(name));
  client::ShardGroupCreate* c = req.mutable_create();
  c->set_shards(shards);
  c->set_max_processors(limits.max_processors);
  c->set_max_in_motion(limits.max_in_motion);
  c->set_drain_ms(absl::ToInt64Milliseconds(limits.drain));
  client::ShardResponse resp;
  return api::WireShard(client, std::move(req), &resp);
}

absl::StatusOr<std::vector<ShardInfo>> ListShards(Client* client,
                                                  absl::string_view name) {
  absl::StatusOr<GroupRead> read = ReadGroup(client, name);
  if (!read.ok()) return read.status();
  std::vector<ShardInfo> out;
  for (uint32_t s = 0; s < read->shards.size(); ++s) {
    const coord::ShardState& st = read->shards[s];
    ShardInfo info;
    info.shard = s;
    info.owner = LeaseOf(st.owner);
    auto zone = read->zones.find(st.owner);
    if (zone != read->zones.end()) info.zone = zone->second;
    info.epoch = st.epoch;
    info.state = coord::ShardPhaseName(st.phase);
    info.next = LeaseOf(st.next);
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ShardGroup>> ShardGroup::Join(
    Client* client, Session* session, absl::string_view name,
    ShardGroupOptions options) {
  absl::StatusOr<std::string> prefix = coord::ShardGroupPrefix(name);
  if (!prefix.ok()) return prefix.status();
  if (!session->Valid()) {
    return absl::FailedPreconditionError(
        "the session is over; join with a live one");
  }
  client::ShardRequest req;
  req.set_group(std::string(name));
  client::ShardJoin* j = req.mutable_join();
  j->set_lease(session->lease());
  j->set_zone(options.zone);
  j->set_weight(options.weight);
  client::ShardResponse resp;
  if (absl::Status s = api::WireShard(client, std::move(req), &resp); !s.ok()) {
    return s;
  }
  absl::StatusOr<GroupRead> read = ReadGroup(client, name);
  if (!read.ok()) return read.status();
  auto group = std::make_unique<ShardGroupImpl>(
      client, session, std::string(name), *std::move(prefix),
      std::move(options), *read);
  if (absl::Status s = group->Start(read->revision); !s.ok()) return s;
  return group;
}

}  // namespace quorate
