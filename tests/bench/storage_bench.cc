// Write-ahead log throughput with one fdatasync per batch, beside the raw
// limit of the same disk measured in the same run, and recovery time.
//
// BM_Append/<entry bytes>/<batch>: Storage::Write of `batch` entries, then
// Storage::Sync(), on a new, growing log. BM_AppendSteady: the same on the
// log of a member that has run a while (compacted segments are reused).
// BM_RawSync/<entry bytes>/<batch>: pwrite of the same number of bytes at the
// end of a preallocated file, then fdatasync: the physical limit for that
// batch. Compare items_per_second of the two. BM_Recovery/<MiB>:
// Storage::Open() of a log of that size.
//
// Files go to $QUORATE_BENCH_DIR, else the current directory (the disk a
// data directory would be on), in a temporary folder removed afterwards.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "storage/storage.h"

namespace quorate::storage {
namespace {

std::string TempDir() {
  const char* base = std::getenv("QUORATE_BENCH_DIR");
  std::string tmpl = std::string(base != nullptr ? base : ".") +
                     "/quorate-storage-bench-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

std::vector<raft::EntryPtr> Batch(uint64_t first, int64_t n, size_t bytes) {
  std::vector<raft::EntryPtr> out;
  for (int64_t i = 0; i < n; ++i) {
    raft::Entry e;
    e.set_index(first + static_cast<uint64_t>(i));
    e.set_term(1);
    e.set_data(std::string(bytes, 'x'));
    out.push_back(std::make_shared<const raft::Entry>(std::move(e)));
  }
  return out;
}

// Appends batches with one Sync() each. `steady`: the log of a member that
// has run a while. Whenever it grows past two segments the state machine's
// snapshot is saved and the log compacted (inside the timed loop), so new
// segments reuse compacted files; a warm-up outside the timing fills and
// compacts the first segments. Without it: a new member's growing log,
// whose segments are all new files zero-filled ahead of use.
void RunAppend(benchmark::State& state, bool steady) {
  const auto bytes = static_cast<size_t>(state.range(0));
  const int64_t batch = state.range(1);
  const std::string dir = TempDir();
  {
    StorageOptions o;
    o.dir = dir + "/data";
    raft::RestoredState restored;
    auto s = Storage::Open(o, &restored);
    if (!s.ok()) std::abort();
    uint64_t next = 1;
    raft::HardState hs;
    hs.set_term(1);
    auto compact = [&] {
      if ((*s)->segment_count() <= 2) return;
      raft::SnapshotMetadata md;
      md.set_index((*s)->last_index());
      md.set_term(1);
      if (!(*s)->SaveSnapshot(md, "state machine").ok()) std::abort();
      if (!(*s)->Compact(md.index()).ok()) std::abort();
    };
    // Warm-up in large batches (the entry size does not matter to it).
    for (int compactions = 0; steady && compactions < 2;) {
      if (!(*s)->Write(std::nullopt, Batch(next, 256, 4096), std::nullopt)
               .ok()) {
        std::abort();
      }
      next += 256;
      if ((*s)->segment_count() > 2) {
        compact();
        ++compactions;
      }
    }
    if (!(*s)->Sync().ok()) std::abort();
    // The caller's entries are made and freed outside the timing.
    std::vector<raft::EntryPtr> entries;
    for (auto _ : state) {
      state.PauseTiming();
      entries = Batch(next, batch, bytes);
      hs.set_commit(next - 1);
      state.ResumeTiming();
      if (!(*s)->Write(std::nullopt, entries, hs).ok()) std::abort();
      if (!(*s)->Sync().ok()) std::abort();
      next += static_cast<uint64_t>(batch);
      if (steady) compact();
    }
    state.SetItemsProcessed(state.iterations() * batch);
    state.SetBytesProcessed(state.iterations() * batch *
                            static_cast<int64_t>(bytes));
  }
  std::filesystem::remove_all(dir);
}

void BM_Append(benchmark::State& state) { RunAppend(state, false); }
BENCHMARK(BM_Append)
    ->ArgsProduct({{128, 4096}, {1, 16, 64, 256}})
    ->UseRealTime()
    ->MinTime(1.0);

void BM_AppendSteady(benchmark::State& state) { RunAppend(state, true); }
BENCHMARK(BM_AppendSteady)
    ->ArgsProduct({{128, 4096}, {1, 16, 64, 256}})
    ->UseRealTime()
    ->MinTime(1.0);

void BM_RawSync(benchmark::State& state) {
  const auto bytes = static_cast<size_t>(state.range(0));
  const int64_t batch = state.range(1);
  const std::string dir = TempDir();
  const std::string path = dir + "/raw";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0600);
  if (fd < 0 || ::posix_fallocate(fd, 0, 64 << 20) != 0) std::abort();
  const std::string block(bytes * static_cast<size_t>(batch), 'x');
  off_t offset = 0;
  for (auto _ : state) {
    if (::pwrite(fd, block.data(), block.size(), offset) !=
        static_cast<ssize_t>(block.size())) {
      std::abort();
    }
    if (::fdatasync(fd) != 0) std::abort();
    offset = (offset + static_cast<off_t>(block.size())) % (48 << 20);
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch *
                          static_cast<int64_t>(bytes));
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_RawSync)
    ->ArgsProduct({{128, 4096}, {1, 16, 64, 256}})
    ->UseRealTime()
    ->MinTime(1.0);

void BM_Recovery(benchmark::State& state) {
  const int64_t mib = state.range(0);
  const std::string dir = TempDir();
  StorageOptions o;
  o.dir = dir + "/data";
  {
    raft::RestoredState restored;
    auto s = Storage::Open(o, &restored);
    if (!s.ok()) std::abort();
    const int64_t entries = mib * 256;  // 4 KiB each
    uint64_t next = 1;
    for (int64_t done = 0; done < entries; done += 256) {
      if (!(*s)->Write(std::nullopt, Batch(next, 256, 4096), std::nullopt)
               .ok()) {
        std::abort();
      }
      next += 256;
    }
    if (!(*s)->Sync().ok()) std::abort();
  }
  uint64_t recovered = 0;
  for (auto _ : state) {
    raft::RestoredState restored;
    RecoveryInfo info;
    auto s = Storage::Open(o, &restored, &info);
    if (!s.ok()) std::abort();
    recovered = restored.entries.size();
    state.counters["segments"] = static_cast<double>(info.segments);
  }
  state.counters["entries"] = static_cast<double>(recovered);
  state.SetBytesProcessed(state.iterations() * mib * (1 << 20));
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_Recovery)->Arg(1024)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace quorate::storage

BENCHMARK_MAIN();
