// Cost of encoding and decoding the AppendEntries message that carries most
// of the replication traffic: per message and per 100-byte entry.
#include <benchmark/benchmark.h>

#include <string>

#include "wire/raft.pb.h"

namespace quorate {
namespace {

raft::Message MakeAppend(int entries) {
  raft::Message m;
  m.set_type(raft::MESSAGE_TYPE_APPEND);
  m.set_from(1);
  m.set_to(2);
  m.set_term(3);
  m.set_index(1000);
  m.set_log_term(3);
  m.set_commit(999);
  for (int i = 0; i < entries; ++i) {
    raft::Entry* e = m.add_entries();
    e->set_term(3);
    e->set_index(1001 + static_cast<uint64_t>(i));
    e->set_data(std::string(100, 'x'));
  }
  return m;
}

void BM_EncodeAppend(benchmark::State& state) {
  const raft::Message m = MakeAppend(static_cast<int>(state.range(0)));
  std::string out;
  for (auto _ : state) {
    out.clear();
    m.SerializeToString(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(out.size()));
}
BENCHMARK(BM_EncodeAppend)->Arg(1)->Arg(64)->Arg(1024);

void BM_DecodeAppend(benchmark::State& state) {
  const std::string bytes =
      MakeAppend(static_cast<int>(state.range(0))).SerializeAsString();
  raft::Message m;
  for (auto _ : state) {
    m.ParseFromString(bytes);
    benchmark::DoNotOptimize(m.entries_size());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(bytes.size()));
}
BENCHMARK(BM_DecodeAppend)->Arg(1)->Arg(64)->Arg(1024);

}  // namespace
}  // namespace quorate

BENCHMARK_MAIN();
