#include "util/flood.h"

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace quorate::testing {

std::string FloodResult::ErrorSummary() const {
  std::string out;
  for (const auto& [code, e] : by_code) {
    absl::StrAppend(&out, e.first, " x code ", code, " (", e.second, "); ");
  }
  return out;
}

FloodResult Flood(int in_flight, absl::Duration duration,
                  const StartFloodCall& start) {
  struct Slot {
    // Held while a call starts: its completion may reach the other
    // draining thread before `call` is assigned.
    std::mutex mu;
    std::unique_ptr<FloodCall> call;
  };
  std::vector<Slot> slots(static_cast<size_t>(in_flight));
  grpc::CompletionQueue cq;
  std::atomic<uint64_t> next{0};
  std::atomic<int> running{in_flight};
  std::mutex mu;  // guards `result`, `begin` and `end`
  FloodResult result;
  absl::Time begin = absl::InfiniteFuture();
  absl::Time end = absl::InfiniteFuture();
  result.ok_per_second.assign(
      static_cast<size_t>(absl::ToInt64Seconds(duration) + 1), 0);
  auto start_in = [&](Slot& slot) {
    std::lock_guard<std::mutex> lock(slot.mu);
    slot.call = start(next.fetch_add(1), &cq, &slot);
  };
  auto drain = [&] {
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
      Slot& slot = *static_cast<Slot*>(tag);
      { std::lock_guard<std::mutex> lock(slot.mu); }
      const absl::Time now = absl::Now();
      bool again;
      {
        std::lock_guard<std::mutex> lock(mu);
        again = now < end;
        if (ok && slot.call->status.ok()) {
          // Before `begin`, while calls are still being started: not
          // the flood's yet (a failure is reported all the same).
          if (now >= begin) {
            ++result.ok;
            const auto second =
                static_cast<size_t>(absl::ToInt64Seconds(now - begin));
            if (second < result.ok_per_second.size()) {
              ++result.ok_per_second[second];
            }
          }
        } else {
          ++result.errors;
          auto& e = result.by_code[slot.call->status.error_code()];
          if (e.first++ == 0) e.second = slot.call->status.error_message();
        }
      }
      slot.call.reset();
      if (again) {
        start_in(slot);
      } else if (running.fetch_sub(1) == 1) {
        cq.Shutdown();
      }
    }
  };
  // The draining threads run while the calls are started: with gRPC's
  // completion queues they are also what sends and receives (a call
  // started with nobody polling would reach the server only once the
  // last one is started, all at once). The flood's time starts once every
  // call is started: starting 10,000 takes this process a while, and that
  // is not the server's time.
  std::thread a(drain), b(drain);
  for (Slot& slot : slots) start_in(slot);
  {
    std::lock_guard<std::mutex> lock(mu);
    begin = absl::Now();
    end = begin + duration;
  }
  a.join();
  b.join();
  result.seconds = absl::ToDoubleSeconds(absl::Now() - begin);
  result.ok_per_second.resize(
      std::min(result.ok_per_second.size(),
               static_cast<size_t>(absl::ToInt64Seconds(duration))));
  return result;
}

}  // namespace quorate::testing
