// Entries committed per second by a 3-member cluster of consensus cores,
// each run by the shipped driver (node/driver.h), in memory, with no I/O:
// the ceiling the core and its driver put on throughput. Also counts heap
// allocations per committed entry (global operator new is replaced in this
// binary).
//
// Each iteration proposes `batch` 100-byte entries at the leader, then
// drives every member and delivers messages until the batch is applied on
// the leader. Persisting is a no-op (writes complete at once, their entries
// dropped), so this measures the core and the driver alone.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "node/driver.h"
#include "raft/raft.h"
#include "raft/random.h"
#include "wire/peer.pb.h"

// GCC pairs malloc with a replaced operator new and warns; the pairing is
// exactly what a replacement must do.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
// Heap allocations made since start, counted by the replaced operator new.
// The benchmark is single-threaded; a plain counter is enough.
uint64_t g_allocations = 0;
}  // namespace

void* operator new(std::size_t size) {
  ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace quorate::raft {
namespace {

// One member's I/O for the shipped driver: messages into the shared queue;
// writes complete at the next Pump() without touching a disk.
class BenchIo final : public node::DriverEnv, public node::DriverWriter {
 public:
  BenchIo(const int64_t* now, std::deque<Message>* queue)
      : now_(now), queue_(queue) {}
  int64_t Now() override { return *now_; }
  void Send(std::vector<Message> messages) override {
    for (Message& m : messages) queue_->push_back(std::move(m));
  }
  void Post(absl::AnyInvocable<void()> fn) override { fn(); }
  void RunInBackground(absl::AnyInvocable<void()> fn) override { fn(); }
  void ScheduleTick(int64_t /*deadline_ns*/) override {}
  void Write(Request /*request*/,
             absl::AnyInvocable<void(absl::Status)> done) override {
    done_.push_back(std::move(done));
  }
  void SaveSnapshot(SnapshotMetadata /*metadata*/,
                    std::shared_ptr<const std::string> /*data*/,
                    absl::AnyInvocable<void(absl::Status)> done) override {
    done_.push_back(std::move(done));
  }
  // Completes what was written; whether there was anything.
  bool CompleteWrites() {
    bool any = false;
    while (!done_.empty()) {
      auto done = std::move(done_.front());
      done_.pop_front();
      done(absl::OkStatus());
      any = true;
    }
    return any;
  }

 private:
  const int64_t* const now_;
  std::deque<Message>* const queue_;
  std::deque<absl::AnyInvocable<void(absl::Status)>> done_;
};

class Bench {
 public:
  explicit Bench(uint64_t members) {
    std::vector<peer::MemberInfo> voters(members);
    for (uint64_t id = 1; id <= members; ++id) voters[id - 1].set_id(id);
    const node::Bootstrap boot = node::MakeBootstrap(voters, {});
    for (uint64_t id = 1; id <= members; ++id) {
      randoms_.push_back(std::make_unique<SeededRandom>(id));
      ios_.push_back(std::make_unique<BenchIo>(&now_, &queue_));
      Config c;
      c.id = id;
      c.random = randoms_.back().get();
      c.heartbeat_interval_ns = 1'000'000;
      c.election_timeout_ns = 10'000'000;
      c.max_inflight_messages = 1024;
      RestoredState r;
      r.snapshot = boot.metadata;
      r.snapshot_data = boot.data;
      node::DriverOptions d;
      d.snapshot_every = 0;
      auto driver = node::Driver::Create(c, std::move(d), std::move(r),
                                         ios_.back().get(), ios_.back().get());
      if (!driver.ok()) std::abort();
      drivers_.push_back(*std::move(driver));
    }
    now_ += 20'000'000;
    drivers_[0]->mutable_raft().Campaign(now_);
    Pump();
    if (drivers_[0]->raft().role() != Role::kLeader) std::abort();
  }

  node::Driver& leader() { return *drivers_[0]; }
  int64_t now() const { return now_; }

  // Drives every member and delivers messages until nothing moves.
  void Pump() {
    bool progress = true;
    while (progress) {
      progress = false;
      for (size_t i = 0; i < drivers_.size(); ++i) {
        drivers_[i]->Drive();
        progress |= ios_[i]->CompleteWrites();
      }
      while (!queue_.empty()) {
        progress = true;
        Message m = std::move(queue_.front());
        queue_.pop_front();
        const uint64_t to = m.to();
        (void)drivers_[to - 1]->mutable_raft().Step(std::move(m), now_);
      }
    }
  }

  uint64_t committed() const { return drivers_[0]->applied(); }

 private:
  int64_t now_ = 1;
  std::vector<std::unique_ptr<SeededRandom>> randoms_;
  std::vector<std::unique_ptr<BenchIo>> ios_;
  std::vector<std::unique_ptr<node::Driver>> drivers_;
  std::deque<Message> queue_;
};

void BM_CommitThroughput(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(0));
  Bench bench(3);
  const std::string payload(100, 'x');
  const uint64_t committed_before = bench.committed();
  const uint64_t allocations_before = g_allocations;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      if (!bench.leader().mutable_raft().Propose(payload, bench.now()).ok()) {
        std::abort();
      }
    }
    bench.Pump();
  }
  const uint64_t committed = bench.committed() - committed_before;
  state.SetItemsProcessed(static_cast<int64_t>(committed));
  state.counters["allocs_per_entry"] =
      committed == 0 ? 0.0
                     : static_cast<double>(g_allocations - allocations_before) /
                           static_cast<double>(committed);
}
BENCHMARK(BM_CommitThroughput)->Arg(1)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace quorate::raft

BENCHMARK_MAIN();
