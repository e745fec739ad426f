// What a snapshot of the key-value store costs the node loop, and what it
// costs the thread that serializes it.
//
// The store: `keys` keys of 128-byte values, and 64 clients that each
// remember the results of their last 4,096 operations (the shape kv_bench
// leaves behind). BM_Capture is the loop's share of a snapshot
// (KvStore::Snapshot pins the shards and sessions); BM_CaptureAndSerialize
// adds the q-snapshot thread's share, and is also what the loop paid before
// snapshots were serialized off it. BM_WritesAfterCapture applies 10,000
// puts from the 64 clients right after a capture, while it is still pinned,
// so each first write to a shard or a session copies it; BM_Writes is the
// same without a capture. Both report their longest single write.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "coord/kv.h"

namespace quorate::coord {
namespace {

constexpr uint64_t kClients = 64;
constexpr int kWrites = 10000;

struct Loaded {
  KvStore store;
  uint64_t index = 0;
  std::map<uint64_t, uint64_t> seq;  // the next seq per client
  std::mt19937_64 random{7};
  uint64_t keys = 0;

  void Put(uint64_t client, uint64_t key) {
    client::KvCommand c;
    c.mutable_op()->set_client(client);
    c.mutable_op()->set_seq(++seq[client]);
    c.mutable_put()->set_key(absl::StrCat("key-", key));
    c.mutable_put()->set_value(std::string(128, 'v'));
    store.Apply(++index, c.SerializeAsString());
  }
  // Returns the longest single write, in seconds.
  double RandomWrites(int n) {
    double longest = 0;
    for (int i = 0; i < n; ++i) {
      const uint64_t client = 1 + random() % kClients;
      const uint64_t key = random() % keys;
      const auto start = std::chrono::steady_clock::now();
      Put(client, key);
      longest = std::max(longest, std::chrono::duration<double>(
                                      std::chrono::steady_clock::now() - start)
                                      .count());
    }
    return longest;
  }
};

// One store per size, built once.
Loaded& Store(uint64_t keys) {
  static std::map<uint64_t, std::unique_ptr<Loaded>> stores;
  std::unique_ptr<Loaded>& s = stores[keys];
  if (s == nullptr) {
    s = std::make_unique<Loaded>();
    s->keys = keys;
    for (uint64_t k = 0; k < keys; ++k) s->Put(1 + k % kClients, k);
    s->RandomWrites(static_cast<int>(kClients * kSessionWindow));
  }
  return *s;
}

void BM_Capture(benchmark::State& state) {
  Loaded& s = Store(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) {
    absl::AnyInvocable<std::string()> serialize = s.store.Snapshot();
    benchmark::DoNotOptimize(serialize);
  }
}

void BM_CaptureAndSerialize(benchmark::State& state) {
  Loaded& s = Store(static_cast<uint64_t>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    bytes = s.store.Snapshot()().size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["snapshot_MB"] = static_cast<double>(bytes) / 1e6;
}

void BM_WritesAfterCapture(benchmark::State& state) {
  Loaded& s = Store(static_cast<uint64_t>(state.range(0)));
  double longest = 0;
  for (auto _ : state) {
    state.PauseTiming();
    absl::AnyInvocable<std::string()> serialize = s.store.Snapshot();
    state.ResumeTiming();
    longest = std::max(longest, s.RandomWrites(kWrites));
    state.PauseTiming();
    serialize = nullptr;  // unpins; the copies' originals are freed here
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kWrites);
  state.counters["longest_write_us"] = longest * 1e6;
}

void BM_Writes(benchmark::State& state) {
  Loaded& s = Store(static_cast<uint64_t>(state.range(0)));
  double longest = 0;
  for (auto _ : state) longest = std::max(longest, s.RandomWrites(kWrites));
  state.SetItemsProcessed(state.iterations() * kWrites);
  state.counters["longest_write_us"] = longest * 1e6;
}

BENCHMARK(BM_Capture)->Arg(65536)->Arg(262144)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CaptureAndSerialize)
    ->Arg(65536)
    ->Arg(262144)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_WritesAfterCapture)
    ->Arg(65536)
    ->Arg(262144)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Writes)->Arg(65536)->Arg(262144)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace quorate::coord

BENCHMARK_MAIN();
