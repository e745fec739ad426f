// Workload switches: a key per workload, "quorate/workload/NAME", whose
// value is "running" or "paused" and, on the next line, the reason. A
// WorkloadSwitch reads it, then watches it; Running() adds the session's
// validity, so that a switch that cannot hear of a pause fails closed.
#include "quorate/workload.h"

#include <atomic>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api/client_internal.h"
#include "coord/campaign.h"
#include "util/mutex.h"

namespace quorate {
namespace {

constexpr absl::string_view kPrefix = "quorate/workload/";
constexpr size_t kMaxReasonBytes = 1024;

absl::StatusOr<std::string> KeyOf(absl::string_view name) {
  if (absl::Status s = coord::CheckName("a workload name", name); !s.ok()) {
    return s;
  }
  return absl::StrCat(kPrefix, name);
}

// The switch as a value says it; a value it cannot read counts as paused
// (whoever wrote it meant something, and stopping is the safe reading).
WorkloadState Parse(absl::string_view name, absl::string_view value) {
  WorkloadState st;
  st.name = std::string(name);
  const size_t nl = value.find('\n');
  const absl::string_view head = value.substr(0, nl);
  st.running = head == "running";
  if (nl != absl::string_view::npos)
    st.reason = std::string(value.substr(nl + 1));
  if (head != "running" && head != "paused") {
    st.reason = absl::StrCat("unreadable switch value '", value, "'");
  }
  return st;
}

class SwitchImpl final : public WorkloadSwitch {
 public:
  SwitchImpl(Session* session, WorkloadState initial)
      : session_(session), running_(initial.running) {
    MutexLock lock(&mu_);
    state_ = std::move(initial);
  }
  ~SwitchImpl() override {
    // The watch's callbacks use this object: stop them first.
    if (watcher_ != nullptr) watcher_->Cancel();
  }

  bool Running() const override {
    return running_.load(std::memory_order_acquire) && session_->Valid();
  }
  WorkloadState state() const override {
    MutexLock lock(&mu_);
    return state_;
  }

  void Set(WorkloadState st) {
    running_.store(st.running, std::memory_order_release);
    MutexLock lock(&mu_);
    state_ = std::move(st);
  }
  void Watch(std::unique_ptr<Watcher> w) { watcher_ = std::move(w); }

 private:
  Session* const session_;
  std::atomic<bool> running_;
  mutable Mutex mu_;
  WorkloadState state_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Watcher> watcher_;  // set once, in Create
};

}  // namespace

absl::Status PauseWorkload(Client* client, absl::string_view name,
                           absl::string_view reason) {
  absl::StatusOr<std::string> key = KeyOf(name);
  if (!key.ok()) return key.status();
  if (reason.size() > kMaxReasonBytes || absl::StrContains(reason, '\n')) {
    return absl::InvalidArgumentError(
        absl::StrCat("a pause's reason is one line of at most ",
                     kMaxReasonBytes, " bytes; got ", reason.size(), " bytes"));
  }
  return client->Put(*key, absl::StrCat("paused\n", reason)).status();
}

absl::Status ResumeWorkload(Client* client, absl::string_view name) {
  absl::StatusOr<std::string> key = KeyOf(name);
  if (!key.ok()) return key.status();
  return client->Put(*key, "running\n").status();
}

absl::StatusOr<std::vector<WorkloadState>> ListWorkloads(Client* client) {
  RangeOptions o;
  o.range_end = PrefixEnd(kPrefix);
  absl::StatusOr<RangeResult> all = api::RangeAll(client, kPrefix, o);
  if (!all.ok()) return all.status();
  std::vector<WorkloadState> out;
  for (const KeyRecord& k : all->kvs) {
    out.push_back(Parse(absl::StripPrefix(k.key, kPrefix), k.value));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<WorkloadSwitch>> WorkloadSwitch::Create(
    Client* client, Session* session, absl::string_view name,
    WorkloadSwitchOptions options) {
  if (client == nullptr || session == nullptr) {
    return absl::InvalidArgumentError("a client and a session are needed");
  }
  absl::StatusOr<std::string> key = KeyOf(name);
  if (!key.ok()) return key.status();
  absl::StatusOr<RangeResult> now = client->Range(*key);
  if (!now.ok()) return now.status();
  WorkloadState initial;
  initial.name = std::string(name);
  if (!now->kvs.empty()) initial = Parse(name, now->kvs.front().value);
  auto sw = std::make_unique<SwitchImpl>(session, initial);
  WatchOptions w;
  w.start_revision = now->revision + 1;
  SwitchImpl* raw = sw.get();
  w.on_events = [raw, name = std::string(name),
                 on_change = std::move(options.on_change)](
                    const std::vector<WatchEvent>& events, uint64_t) {
    if (events.empty()) return;
    // A revision's last event for the key is its state then.
    const WatchEvent& e = events.back();
    WorkloadState st;
    st.name = name;
    if (e.type == WatchEvent::Type::kPut) st = Parse(name, e.kv.value);
    const WorkloadState before = raw->state();
    const bool changed =
        st.running != before.running || st.reason != before.reason;
    raw->Set(st);
    if (changed && on_change) on_change(st);
  };
  absl::StatusOr<std::unique_ptr<Watcher>> watcher =
      client->Watch(*key, std::move(w));
  if (!watcher.ok()) return watcher.status();
  sw->Watch(*std::move(watcher));
  return sw;
}

}  // namespace quorate
