// Fuzzes storage recovery: storage::Storage::Open on a data directory (an
// in-memory MemFileSystem) whose log segments, snapshots, SALT and leftover
// files come from the input, raw or with checksums made valid by the
// harness (format: fuzz_input.h, FileKind; storage_input.h).
//
// Checked: Open() returns an error status, or a state that is
// self-consistent (entries contiguous after the snapshot, terms never
// decreasing, commit and applied within the log); a consensus core starts
// on that state (Raft::Create may refuse it, not crash); and the recovered
// log can be continued: an entry appended after it and synced, the
// directory recovers again to the same state plus that entry. Never a
// crash, an abort or undefined behaviour.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "fuzz_input.h"
#include "raft/raft.h"
#include "raft/validate.h"
#include "storage/mem_fs.h"
#include "storage/storage.h"
#include "storage_input.h"
#include "util/check.h"

namespace quorate::fuzz {
namespace {

bool SameEntry(const raft::Entry& a, const raft::Entry& b) {
  return a.index() == b.index() && a.term() == b.term() &&
         a.type() == b.type() && a.data() == b.data();
}

void Run(Reader& in) {
  storage::testing::MemFileSystem fs;
  PutFiles(in, &fs);
  const storage::StorageOptions options =
      storage::testing::MemStorageOptions(&fs, /*segment_bytes=*/4096);
  raft::RestoredState first;
  auto opened = storage::Storage::Open(options, &first);
  if (!opened.ok()) return;  // refused: fine
  CheckRestored(first);
  StartCore(first);

  // Continue the log after what was recovered, then recover again.
  const uint64_t last = first.entries.empty() ? first.snapshot.index()
                                              : first.entries.back().index();
  // The core never appends past kMaxIndex.
  if (last >= raft::kMaxIndex) return;
  raft::Entry next;
  next.set_index(last + 1);
  next.set_term(
      std::max<uint64_t>({first.hard_state.term(),
                          first.entries.empty() ? first.snapshot.term()
                                                : first.entries.back().term(),
                          1}));
  next.set_data("appended after recovery");
  const absl::Status w = (*opened)->Write(
      std::nullopt, {std::make_shared<const raft::Entry>(next)}, std::nullopt);
  QUORATE_CHECK(w.ok()) << "append after recovery: " << w;
  const absl::Status s = (*opened)->Sync();
  QUORATE_CHECK(s.ok()) << "sync after recovery: " << s;
  opened->reset();

  raft::RestoredState second;
  auto reopened = storage::Storage::Open(options, &second);
  QUORATE_CHECK(reopened.ok())
      << "a recovered and continued log does not recover: "
      << reopened.status();
  CheckRestored(second);
  QUORATE_CHECK_EQ(second.snapshot.index(), first.snapshot.index());
  QUORATE_CHECK_EQ(second.hard_state.SerializeAsString(),
                   first.hard_state.SerializeAsString());
  QUORATE_CHECK_EQ(second.entries.size(), first.entries.size() + 1);
  for (size_t i = 0; i < first.entries.size(); ++i) {
    QUORATE_CHECK(SameEntry(second.entries[i], first.entries[i]))
        << "entry " << first.entries[i].index() << " changed";
  }
  QUORATE_CHECK(SameEntry(second.entries.back(), next))
      << "the appended entry did not survive";
}

}  // namespace
}  // namespace quorate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quorate::fuzz::Reader in(data, size);
  quorate::fuzz::Run(in);
  return 0;
}
