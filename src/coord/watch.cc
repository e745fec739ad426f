#include "coord/watch.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/thread_name.h"

namespace quorate::coord {
namespace {

// Revisions one look at the history takes.
constexpr size_t kFetch = 1024;
// What a response without events costs, about.
constexpr size_t kSmall = 64;

size_t EventBytes(const client::WatchEvent& e) {
  return e.kv().key().size() + e.kv().value().size() +
         e.prev_kv().key().size() + e.prev_kv().value().size() + 48;
}

client::WatchResponse Response(int64_t id) {
  client::WatchResponse r;
  r.set_watch_id(id);
  return r;
}

}  // namespace

bool WatchStream::Queue(int64_t id, client::WatchResponse message,
                        size_t bytes) {
  const bool was_empty = outbox_.empty();
  auto w = watchers_.find(id);
  if (w != watchers_.end()) w->second.queued_bytes += bytes;
  outbox_.push_back(Out{id, bytes, std::move(message)});
  return was_empty;
}

bool WatchStream::Cancel(int64_t id, absl::StatusCode code, std::string message,
                         uint64_t revision, uint64_t compact_revision) {
  watchers_.erase(id);
  std::erase_if(outbox_, [id](const Out& o) { return o.watch_id == id; });
  client::WatchResponse r = Response(id);
  r.set_canceled(true);
  r.set_code(static_cast<int32_t>(code));
  r.set_message(std::move(message));
  r.set_revision(revision);
  r.set_compact_revision(compact_revision);
  return Queue(id, std::move(r), kSmall);
}

// A create that fails is answered created and canceled at once: the
// client tells it from a watcher of that id that is running.
bool WatchStream::Refuse(int64_t id, absl::StatusCode code, std::string message,
                         uint64_t compact_revision) {
  client::WatchResponse r = Response(id);
  r.set_created(true);
  r.set_canceled(true);
  r.set_code(static_cast<int32_t>(code));
  r.set_message(std::move(message));
  r.set_compact_revision(compact_revision);
  return Queue(id, std::move(r), kSmall);
}

bool WatchStream::Create(const client::WatchCreate& c) {
  const int64_t id = c.watch_id();
  auto refuse = [&](absl::StatusCode code, std::string message,
                    uint64_t compact = 0) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return Refuse(id, code, std::move(message), compact);
  };
  if (watchers_.contains(id)) {
    return refuse(absl::StatusCode::kInvalidArgument,
                  absl::StrCat("watch id ", id, " is in use on this stream"));
  }
  if (absl::Status s = CheckRange(c.key(), c.range_end()); !s.ok()) {
    return refuse(s.code(), std::string(s.message()));
  }
  const WatchLimits& limits = hub_->limits();
  if (watchers_.size() >= limits.max_watchers_per_stream) {
    return refuse(
        absl::StatusCode::kResourceExhausted,
        absl::StrCat("the stream has ", watchers_.size(),
                     " watchers; the limit is ", limits.max_watchers_per_stream,
                     " (--max_watchers_per_stream)"));
  }
  const uint64_t compacted = hub_->store()->compacted();
  const uint64_t current = hub_->store()->revision();
  const uint64_t start =
      c.start_revision() == 0 ? current + 1 : c.start_revision();
  if (start <= compacted) {
    return refuse(
        absl::StatusCode::kOutOfRange,
        absl::StrCat("revision ", start,
                     " is compacted: the oldest revision a watch can start "
                     "at is ",
                     compacted + 1, " (--watch_history)"),
        compacted);
  }
  Watcher& w = watchers_[id];
  w.key = c.key();
  w.range_end = c.range_end();
  w.prev_kv = c.prev_kv();
  w.progress_notify = c.progress_notify();
  w.no_put = c.no_put();
  w.no_delete = c.no_delete();
  w.next = start;
  w.sent = start - 1;
  w.catching_up = start <= current;
  w.last_queued_ns = hub_->now();
  client::WatchResponse r = Response(id);
  r.set_created(true);
  r.set_revision(start - 1);
  return Queue(id, std::move(r), kSmall);
}

void WatchStream::Handle(const client::WatchRequest& request) {
  bool woke = false;
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    switch (request.request_case()) {
      case client::WatchRequest::kCreate:
        woke = Create(request.create());
        break;
      case client::WatchRequest::kCancel: {
        const int64_t id = request.cancel().watch_id();
        if (!watchers_.contains(id)) {
          woke =
              Cancel(id, absl::StatusCode::kNotFound,
                     absl::StrCat("no watcher ", id, " on this stream"), 0, 0);
        } else {
          const uint64_t sent = watchers_[id].sent;
          woke = Cancel(id, absl::StatusCode::kOk, "canceled by the client",
                        sent, 0);
        }
        break;
      }
      case client::WatchRequest::kProgress:
        // How far each watcher has got: every event up to there is
        // queued before this.
        for (auto& [id, w] : watchers_) {
          client::WatchResponse r = Response(id);
          r.set_revision(w.next - 1);
          w.last_queued_ns = hub_->now();
          woke = Queue(id, std::move(r), kSmall) || woke;
        }
        break;
      case client::WatchRequest::REQUEST_NOT_SET: {
        client::WatchResponse r = Response(-1);
        r.set_canceled(true);
        r.set_code(static_cast<int32_t>(absl::StatusCode::kInvalidArgument));
        r.set_message(
            "a watch request is neither a create, a cancel nor a "
            "progress request");
        woke = Queue(-1, std::move(r), kSmall);
        break;
      }
    }
  }
  if (woke) Wake();
  if (request.has_create()) hub_->Notify();
}

void WatchStream::Wake() {
  MutexLock lock(&wake_mu_);
  if (!wake_closed_) wake_();
}

client::WatchResponse WatchStream::PopLocked(bool* room_again) {
  Out& o = outbox_.front();
  auto w = watchers_.find(o.watch_id);
  if (w != watchers_.end()) {
    // A catching-up watcher that was full may take more now.
    const size_t bound = hub_->limits().buffer_bytes;
    *room_again = *room_again ||
                  (w->second.catching_up && w->second.queued_bytes >= bound &&
                   w->second.queued_bytes - o.bytes < bound);
    w->second.queued_bytes -= o.bytes;
    w->second.sent = std::max(w->second.sent, o.message.revision());
  }
  client::WatchResponse out = std::move(o.message);
  outbox_.pop_front();
  return out;
}

std::optional<client::WatchResponse> WatchStream::Next() {
  bool room_again = false;
  std::optional<client::WatchResponse> out;
  {
    MutexLock lock(&mu_);
    if (outbox_.empty()) return std::nullopt;
    out = PopLocked(&room_again);
  }
  if (room_again) hub_->Notify();
  return out;
}

bool WatchStream::Take(size_t max_bytes, client::WatchResponses* out) {
  bool room_again = false;
  {
    MutexLock lock(&mu_);
    size_t bytes = 0;
    while (!outbox_.empty() && (out->responses_size() == 0 ||
                                bytes + outbox_.front().bytes <= max_bytes)) {
      bytes += outbox_.front().bytes;
      *out->add_responses() = PopLocked(&room_again);
    }
  }
  if (room_again) hub_->Notify();
  return out->responses_size() > 0;
}

WatchStream::~WatchStream() { hub_->open_streams_.fetch_sub(1); }

void WatchStream::Close() {
  {
    MutexLock lock(&wake_mu_);
    wake_closed_ = true;
  }
  MutexLock lock(&mu_);
  closed_ = true;
  watchers_.clear();
  outbox_.clear();
}

size_t WatchStream::watchers() const {
  MutexLock lock(&mu_);
  return watchers_.size();
}

WatchHub::WatchHub(const KvStore* store, WatchLimits limits, ClockFn clock)
    : store_(store), limits_(limits), clock_(clock) {}

WatchHub::~WatchHub() { Stop(); }

void WatchHub::Start() {
  thread_ = std::thread([this] {
    SetThreadName("watch");
    // Progress notifications are due at most this late.
    const absl::Duration tick = absl::Nanoseconds(
        std::max<int64_t>(limits_.progress_interval_ns / 4, 1'000'000));
    for (;;) {
      {
        MutexLock lock(&wake_mu_);
        if (!woken_ && !stopping_) wake_cv_.WaitWithTimeout(&wake_mu_, tick);
        if (stopping_) return;
        woken_ = false;
      }
      RunOnce();
    }
  });
}

void WatchHub::Stop() {
  {
    MutexLock lock(&wake_mu_);
    stopping_ = true;
  }
  wake_cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void WatchHub::Notify() {
  if (open_streams_.load(std::memory_order_relaxed) == 0) return;
  {
    MutexLock lock(&wake_mu_);
    if (woken_) return;
    woken_ = true;
  }
  wake_cv_.Signal();
}

std::shared_ptr<WatchStream> WatchHub::Open(std::function<void()> wake) {
  open_streams_.fetch_add(1);
  std::shared_ptr<WatchStream> s(new WatchStream(this, std::move(wake)));
  MutexLock lock(&mu_);
  streams_.push_back(s);
  return s;
}

WatchHub::Stats WatchHub::stats() const {
  Stats st;
  std::vector<std::shared_ptr<WatchStream>> live;
  {
    MutexLock lock(&mu_);
    st.cut_off = cut_off_;
    for (const auto& weak : streams_) {
      if (auto s = weak.lock()) live.push_back(std::move(s));
    }
  }
  st.streams = live.size();
  for (const auto& s : live) st.watchers += s->watchers();
  return st;
}

void WatchHub::RunOnce() {
  std::vector<std::shared_ptr<WatchStream>> live;
  {
    MutexLock lock(&mu_);
    std::erase_if(streams_, [&live](const std::weak_ptr<WatchStream>& weak) {
      std::shared_ptr<WatchStream> s = weak.lock();
      if (s == nullptr) return true;
      live.push_back(std::move(s));
      return false;
    });
  }
  const int64_t now = clock_();
  // Looks at the history, shared by the watchers at one revision (those
  // caught up, mostly).
  std::map<uint64_t, KvStore::History> fetched;
  for (const std::shared_ptr<WatchStream>& s : live) {
    bool woke = false;
    {
      MutexLock lock(&s->mu_);
      if (s->closed_) continue;
      for (auto it = s->watchers_.begin(); it != s->watchers_.end();) {
        auto next = std::next(it);  // Advance may erase `it`
        woke = Advance(*s, it->first, it->second, now, fetched) || woke;
        it = next;
      }
    }
    if (woke) s->Wake();
  }
}

bool WatchHub::Advance(WatchStream& s, int64_t id, WatchStream::Watcher& w,
                       int64_t now,
                       std::map<uint64_t, KvStore::History>& fetched) {
  bool woke = false;
  for (;;) {
    auto f = fetched.find(w.next);
    if (f == fetched.end()) {
      f = fetched.emplace(w.next, store_->ChangesFrom(w.next, kFetch)).first;
    }
    const KvStore::History& h = f->second;
    if (w.next > h.revision) {
      w.catching_up = false;
      if (w.progress_notify &&
          now - w.last_queued_ns >= limits_.progress_interval_ns) {
        client::WatchResponse r = Response(id);
        r.set_revision(w.next - 1);
        w.last_queued_ns = now;
        woke = s.Queue(id, std::move(r), kSmall) || woke;
      }
      return woke;
    }
    if (w.next <= h.compacted) {
      return s.Cancel(id, absl::StatusCode::kOutOfRange,
                      absl::StrCat("the watcher fell out of the history: its "
                                   "next revision ",
                                   w.next, " is compacted (--watch_history)"),
                      w.next - 1, h.compacted) ||
             woke;
    }
    if (w.queued_bytes >= limits_.buffer_bytes) {
      if (w.catching_up) {
        if (limits_.unsafe_skip_when_full) w.next = h.revision + 1;
        return woke;  // it goes at its client's pace
      }
      const uint64_t sent = w.sent;
      {
        MutexLock lock(&mu_);
        ++cut_off_;
      }
      return s.Cancel(id, absl::StatusCode::kResourceExhausted,
                      absl::StrCat("the watcher fell behind by more than ",
                                   limits_.buffer_bytes,
                                   " bytes (--watch_buffer_bytes); resume it "
                                   "from revision ",
                                   sent + 1),
                      sent, 0) ||
             woke;
    }
    if (h.changes.empty()) return woke;  // (the history is consecutive)
    client::WatchResponse r = Response(id);
    size_t bytes = 0;
    uint64_t last = w.next - 1;
    // A message fills what is left of the buffer (one revision at least).
    const size_t cap =
        std::min(kMaxWatchMessageBytes, limits_.buffer_bytes - w.queued_bytes);
    for (const Change& c : h.changes) {
      // The watcher's events of this revision.
      std::vector<client::WatchEvent> mine;
      size_t size = 0;
      for (const client::WatchEvent& e : c->events()) {
        if (e.type() == client::WatchEvent::PUT ? w.no_put : w.no_delete) {
          continue;
        }
        if (!KeyInRange(e.kv().key(), w.key, w.range_end)) continue;
        client::WatchEvent& out = mine.emplace_back(e);
        if (!w.prev_kv) out.clear_prev_kv();
        size += EventBytes(out);
      }
      if (r.events_size() > 0 && bytes + size > cap) {
        break;  // the next message starts with it
      }
      if (size > kMaxWatchMessageBytes) {
        // Alone too large for one message (and first in this one): in
        // fragments.
        woke = QueueFragments(s, id, w, c->revision(), std::move(mine), now) ||
               woke;
        last = c->revision();
        break;
      }
      for (client::WatchEvent& e : mine) *r.add_events() = std::move(e);
      bytes += size;
      last = c->revision();
    }
    w.next = last + 1;
    if (r.events_size() > 0) {
      r.set_revision(last);
      w.last_queued_ns = now;
      woke = s.Queue(id, std::move(r), bytes) || woke;
    }
  }
}

bool WatchHub::QueueFragments(WatchStream& s, int64_t id,
                              WatchStream::Watcher& w, uint64_t revision,
                              std::vector<client::WatchEvent> events,
                              int64_t now) {
  bool woke = false;
  size_t i = 0;
  while (i < events.size()) {
    client::WatchResponse r = Response(id);
    r.set_revision(revision);
    size_t bytes = 0;
    while (i < events.size() &&
           (r.events_size() == 0 ||
            bytes + EventBytes(events[i]) <= kMaxWatchMessageBytes)) {
      bytes += EventBytes(events[i]);
      *r.add_events() = std::move(events[i++]);
    }
    r.set_fragment(i < events.size());
    woke = s.Queue(id, std::move(r), bytes) || woke;
  }
  w.last_queued_ns = now;
  return woke;
}

}  // namespace quorate::coord
