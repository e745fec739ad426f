// api/watch_mux.h: every watch of one Client, on a few Watch streams.
//
// A watch is one watch id on a shared gRPC stream (client.proto's Watch
// serves many watchers per stream). Starting a watch is then one message
// on an open stream instead of a new stream and a thread of its own: a
// lock waiter or a shard processor's watch costs the member and the
// client a map entry, not a connection's worth of state.
//
// Each stream has one thread. It connects (to the member the client talks
// to, then the endpoints in turn), creates every watch placed on it from
// the revision after the last one that watch delivered, reads, and runs
// the watches' callbacks. On any break it starts over, so each watch
// resumes without a gap and without a repeat, as a watch on a stream of
// its own did. A watch the member cut off for falling behind is created
// again on the same stream. A stream holds `per_stream` watches at most,
// or fewer if a member refuses more (--max_watchers_per_stream); then
// another stream is opened.
//
// Threads: Watch() and the Watchers it returns from any thread. The
// callbacks of the watches on one stream run on that stream's thread, one
// at a time. Watch() called from a callback returns before the watch is
// accepted: waiting there could wait on a stream whose own callback waits
// on this one (a refusal then goes to the new watch's on_end).
#ifndef QUORATE_API_WATCH_MUX_H_
#define QUORATE_API_WATCH_MUX_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "quorate/client.h"
#include "util/mutex.h"
#include "wire/client.grpc.pb.h"

namespace quorate::api {

// How the watches reach the members: the client's own channels.
struct WatchLink {
  // The stub for a member's address; lives as long as the WatchMux.
  std::function<client::Kv::Stub*(const std::string& address)> stub;
  // The member the client talks to now (the leader, if known).
  std::function<std::string()> pick;
  std::vector<std::string> endpoints;  // tried in turn after a failure
  // Waits until the channel to an address is connected, or the time
  // passed, polling it (true if connected). A stream waits here between
  // tries: gRPC moves a connection attempt on only while something polls
  // the channel, else every 5 s.
  std::function<bool(const std::string& address, absl::Duration timeout)>
      await_connected;
  // Whether the channel to an address is connected now.
  std::function<bool(const std::string& address)> connected;
  // How long Watch() waits for a member to accept a watch.
  absl::Duration accept_timeout = absl::Seconds(5);
  size_t per_stream = 1000;  // watches on one stream, at most
};

class WatchMux {
 public:
  explicit WatchMux(WatchLink link);
  // Every Watcher it returned must be gone.
  ~WatchMux();
  WatchMux(const WatchMux&) = delete;
  WatchMux& operator=(const WatchMux&) = delete;

  // Client::Watch, for a range already checked.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(std::string key,
                                                 WatchOptions options);

  // Streams opened so far (tests).
  size_t streams() const;

 private:
  struct Entry;
  class Stream;
  class Handle;

  // A request for the member, queued on its stream under mu_ and written
  // after, in order, by the stream's Flush.
  struct Outgoing {
    uint64_t conn = 0;  // the connection it was made for
    client::WatchRequest request;
  };
  // The streams that were given requests under mu_: Send flushes each
  // once mu_ is let go.
  using Requests = std::vector<Stream*>;

  // Puts `e` on a stream with room (opening one if none has), and adds the
  // create to send there if that stream is connected.
  void PlaceLocked(const std::shared_ptr<Entry>& e, Requests* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes what was queued under mu_ on the streams `requests` names (not
  // under mu_), each once.
  static void Send(Requests& requests);
  // Cancel() of a Watcher.
  void Cancel(const std::shared_ptr<Entry>& e);

  const WatchLink link_;
  mutable Mutex mu_;
  CondVar changed_;  // a watch was accepted or ended; a callback returned
  std::vector<std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace quorate::api

#endif  // QUORATE_API_WATCH_MUX_H_
