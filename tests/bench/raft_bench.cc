// Entries committed per second by a 3-member cluster of consensus cores,
// in memory, with no I/O: the ceiling the core puts on throughput. Also
// counts heap allocations per committed entry (global operator new is
// replaced in this binary).
//
// Each iteration proposes `batch` 100-byte entries at the leader, then
// drives every member's Ready/Advance and delivers messages until the
// batch is committed on the leader. Persisting is a no-op (the Ready's
// entries are dropped), so this measures the core alone.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <deque>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "raft/raft.h"
#include "raft/random.h"

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

class Bench {
 public:
  explicit Bench(uint64_t members) {
    ConfState conf;
    for (uint64_t id = 1; id <= members; ++id) conf.add_voters(id);
    for (uint64_t id = 1; id <= members; ++id) {
      randoms_.push_back(std::make_unique<SeededRandom>(id));
      Config c;
      c.id = id;
      c.random = randoms_.back().get();
      c.heartbeat_interval_ns = 1'000'000;
      c.election_timeout_ns = 10'000'000;
      c.max_inflight_messages = 1024;
      RestoredState r;
      *r.snapshot.mutable_conf_state() = conf;
      auto raft = Raft::Create(c, std::move(r), now_);
      if (!raft.ok()) std::abort();
      rafts_.push_back(*std::move(raft));
    }
    now_ += 20'000'000;
    rafts_[0]->Campaign(now_);
    Pump();
    if (rafts_[0]->role() != Role::kLeader) std::abort();
  }

  Raft& leader() { return *rafts_[0]; }
  int64_t now() const { return now_; }

  // Drives Readies and delivers messages until nothing moves.
  void Pump() {
    bool progress = true;
    while (progress) {
      progress = false;
      for (auto& r : rafts_) {
        if (!r->HasReady()) continue;
        progress = true;
        Ready rd = r->GetReady();
        for (Message& m : rd.messages) queue_.push_back(std::move(m));
        for (Message& m : rd.messages_after_persist) {
          queue_.push_back(std::move(m));
        }
        if (r.get() == rafts_[0].get()) {
          committed_ += rd.committed_entries.size();
        }
        r->Advance();
      }
      while (!queue_.empty()) {
        progress = true;
        Message m = std::move(queue_.front());
        queue_.pop_front();
        const uint64_t to = m.to();
        (void)rafts_[to - 1]->Step(std::move(m), now_);
      }
    }
  }

  uint64_t committed() const { return committed_; }

 private:
  int64_t now_ = 1;
  std::vector<std::unique_ptr<SeededRandom>> randoms_;
  std::vector<std::unique_ptr<Raft>> rafts_;
  std::deque<Message> queue_;
  uint64_t committed_ = 0;
};

void BM_CommitThroughput(benchmark::State& state) {
  const auto batch = static_cast<int>(state.range(0));
  Bench bench(3);
  const std::string payload(100, 'x');
  const uint64_t committed_before = bench.committed();
  const uint64_t allocations_before = g_allocations;
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) {
      if (!bench.leader().Propose(payload, bench.now()).ok()) std::abort();
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
