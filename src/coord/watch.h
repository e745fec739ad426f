// coord/watch.h: watchers, served by every member from its store's watch
// history (coord/kv.h), so that clients learn of changes without polling.
//
// A WatchStream is one client stream: its requests create and cancel
// watchers, and its outbox holds the responses waiting to be sent. The
// WatchHub's thread, woken by every new revision the store applies, moves
// each watcher along the history: it matches the changes from the
// watcher's next revision on against the watcher's range and filters, and
// queues what matched. The store's apply never waits for a watcher: it
// only wakes the hub.
//
// Every watcher's queued bytes are bounded (WatchLimits::buffer_bytes):
//  - a watcher that is catching up (its start revision is in the past, or
//    it was resumed) takes more from the history only while it is below
//    the bound: it goes at the pace its client reads;
//  - a watcher that was caught up and falls behind by more than the bound
//    is cut off: canceled with RESOURCE_EXHAUSTED and the last revision
//    handed to the sender, its queued messages dropped. The client resumes
//    it from that revision + 1 and it catches up from the history.
// So a watcher's memory is at most the bound plus one message, and a slow
// watcher slows nobody else. A watcher whose next revision leaves the
// history is canceled with OUT_OF_RANGE.
//
// Each response's `revision` says every event of the watcher up to it has
// been queued (client.proto WatchResponse), progress responses included:
// resuming from revision + 1 misses nothing and repeats nothing.
//
// Threads: Notify, Open, and a stream's Handle/Next/Close from any thread;
// `wake` is called on the hub's thread or Handle's caller, never under a
// lock of the hub's.
#ifndef QUORATE_COORD_WATCH_H_
#define QUORATE_COORD_WATCH_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "coord/kv.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "wire/client.pb.h"

namespace quorate::coord {

// A member's limits on watches (docs/operations.md).
struct WatchLimits {
  size_t buffer_bytes = size_t{4} << 20;  // per watcher, queued
  size_t max_watchers_per_stream = 10000;
  int64_t progress_interval_ns = 1'000'000'000;
  // Deliberately broken, for the simulator's checker: a catching-up
  // watcher whose buffer is full skips ahead (dropping events) instead of
  // waiting for its client. Never set outside tests.
  bool unsafe_skip_when_full = false;
};

// One response message holds at most about this many bytes of events, or
// one event. A revision's events are split only when they hold more: as
// fragments (client.proto WatchResponse).
inline constexpr size_t kMaxWatchMessageBytes = size_t{1} << 20;

class WatchHub;

class WatchStream {
 public:
  ~WatchStream();
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // A request from the client; answers (created, canceled, progress) are
  // queued in order with the events.
  void Handle(const client::WatchRequest& request);
  // The next response to send, moved out; nullopt if none is waiting.
  std::optional<client::WatchResponse> Next();
  // The responses waiting, in order, up to about `max_bytes` (one at
  // least), moved into `out`; false if none was waiting.
  bool Take(size_t max_bytes, client::WatchResponses* out);
  // The client is gone: the watchers go with it. Once Close() returns,
  // `wake` is not running and will not be called again.
  void Close();

  size_t watchers() const;

 private:
  friend class WatchHub;
  struct Watcher {
    std::string key;
    std::string range_end;
    bool prev_kv = false;
    bool progress_notify = false;
    bool no_put = false;
    bool no_delete = false;
    uint64_t next = 0;           // the next revision to look at
    uint64_t sent = 0;           // the revision of its last message sent
    size_t queued_bytes = 0;     // of its messages in the outbox
    bool catching_up = true;     // not yet at the newest revision
    int64_t last_queued_ns = 0;  // for progress notifications
  };
  struct Out {
    int64_t watch_id = 0;
    size_t bytes = 0;
    client::WatchResponse message;
  };

  WatchStream(WatchHub* hub, std::function<void()> wake)
      : hub_(hub), wake_(std::move(wake)) {}

  // Queues `message` for watcher `id`; true if the outbox was empty.
  bool Queue(int64_t id, client::WatchResponse message, size_t bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the watcher's queued messages and queues its cancel.
  bool Cancel(int64_t id, absl::StatusCode code, std::string message,
              uint64_t revision, uint64_t compact_revision)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Create(const client::WatchCreate& create)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers a create it refuses.
  bool Refuse(int64_t id, absl::StatusCode code, std::string message,
              uint64_t compact_revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the outbox's first response out (there is one), and says
  // whether its watcher has room again.
  client::WatchResponse PopLocked(bool* room_again)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Calls wake_ unless closed (never under mu_).
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);

  WatchHub* const hub_;
  const std::function<void()> wake_;
  mutable Mutex mu_;
  std::map<int64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  std::deque<Out> outbox_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  // Held while wake_ runs: Close() waits for it.
  Mutex wake_mu_;
  bool wake_closed_ ABSL_GUARDED_BY(wake_mu_) = false;
};

class WatchHub {
 public:
  WatchHub(const KvStore* store, WatchLimits limits,
           ClockFn clock = MonotonicNowNs);
  ~WatchHub();  // Stop()
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // Runs the hub on a thread of its own, until Stop().
  void Start();
  void Stop();
  // The store has a new revision (its change listener), or a watcher has
  // room again. Cheap: it only wakes the thread, and only while a stream
  // is open (a member nobody watches pays an atomic load per apply).
  void Notify();

  // A new client stream; `wake` is called when its outbox goes from empty
  // to not empty.
  std::shared_ptr<WatchStream> Open(std::function<void()> wake);

  // One pass over every watcher (the thread's work; tests call it
  // directly instead of Start()).
  void RunOnce();

  const WatchLimits& limits() const { return limits_; }
  const KvStore* store() const { return store_; }
  int64_t now() const { return clock_(); }

  struct Stats {
    size_t streams = 0;
    size_t watchers = 0;
    uint64_t cut_off = 0;  // watchers cut off for falling behind, ever
  };
  Stats stats() const;

 private:
  friend class WatchStream;
  // Moves watcher `w` (`id` on `s`) along the history; true if the
  // stream's outbox went from empty to not empty.
  bool Advance(WatchStream& s, int64_t id, WatchStream::Watcher& w, int64_t now,
               std::map<uint64_t, KvStore::History>& fetched)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu_);
  // Queues one revision's events for `w` in parts of about
  // kMaxWatchMessageBytes.
  bool QueueFragments(WatchStream& s, int64_t id, WatchStream::Watcher& w,
                      uint64_t revision, std::vector<client::WatchEvent> events,
                      int64_t now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu_);

  const KvStore* const store_;
  const WatchLimits limits_;
  const ClockFn clock_;
  mutable Mutex mu_;
  std::vector<std::weak_ptr<WatchStream>> streams_ ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> open_streams_{0};  // WatchStreams not yet destroyed
  uint64_t cut_off_ ABSL_GUARDED_BY(mu_) = 0;

  Mutex wake_mu_;
  CondVar wake_cv_;
  bool woken_ ABSL_GUARDED_BY(wake_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(wake_mu_) = false;
  std::thread thread_;
};

}  // namespace quorate::coord

#endif  // QUORATE_COORD_WATCH_H_
