// Fuzzes snapshot loading, from the file on disk to the state machine:
// a snapshot file (storage's format: a framed SnapshotHeader, then the
// data) recovered by storage::Storage::Open, a consensus core started on
// its metadata, its data parsed as the node's peer::NodeSnapshot, and the
// state in it restored by coord::KvStore::Restore; or (kSnapStoreOnly)
// arbitrary bytes given to KvStore::Restore directly. Format: fuzz_input.h,
// SnapshotFlags.
//
// Checked: every step either refuses the bytes with an error status or
// yields a consistent state: storage's recovered state is self-consistent
// (storage_input.h, CheckRestored); a restored store snapshots, restores
// and answers the same again, holds only keys with revisions in
// [1, revision] (kv_check.h, CheckRoundTrip), and the next write raises its
// revision by one, the same on the store and on its copy. Never a crash,
// an abort or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string>

#include "coord/kv.h"
#include "fuzz_input.h"
#include "kv_check.h"
#include "storage/mem_fs.h"
#include "storage/record.h"
#include "storage/storage.h"
#include "storage_input.h"
#include "util/check.h"
#include "wire/client.pb.h"
#include "wire/peer.pb.h"

namespace quorate::fuzz {
namespace {

void RestoreStore(const std::string& bytes) {
  coord::KvStore store;
  if (!store.Restore(bytes).ok()) return;  // refused: fine
  auto copy = CheckRoundTrip(store, SnapshotNow(store));

  client::KvCommand put;
  put.mutable_put()->set_key("fuzz");
  put.mutable_put()->set_value("after restore");
  const std::string command = put.SerializeAsString();
  const uint64_t before = store.revision();
  const std::string a = store.Apply(1, command);
  const std::string b = copy->Apply(1, command);
  QUORATE_CHECK(a == b) << "a store and its restored copy answer differently";
  QUORATE_CHECK_EQ(store.revision(), before + 1)
      << "a write did not raise the revision by one";
}

void Run(Reader& in) {
  const uint8_t flags = in.U8();
  const std::string body = in.Rest();
  if (flags & kSnapStoreOnly) {
    RestoreStore(body);
    return;
  }
  std::string file;
  uint64_t index = 1;
  uint64_t term = 1;
  if (flags & kSnapFrame) {
    file = FrameSnapshot(body, (flags & kSnapFixData) != 0, &index, &term);
  } else {
    file = body;
    SnapshotFileName(file, &index, &term);
  }
  storage::testing::MemFileSystem fs;
  PutFile(&fs, "SALT", SaltFile(kFuzzSecret));
  PutFile(&fs, storage::internal::SnapshotName(index, term), file);
  raft::RestoredState restored;
  auto opened = storage::Storage::Open(
      storage::testing::MemStorageOptions(&fs, /*segment_bytes=*/4096),
      &restored);
  if (!opened.ok()) return;
  CheckRestored(restored);
  if (restored.snapshot_data == nullptr) return;  // skipped as invalid
  QUORATE_CHECK_EQ(restored.snapshot.index(), index);
  StartCore(restored);

  peer::NodeSnapshot node;
  if (!node.ParseFromString(*restored.snapshot_data)) return;
  RestoreStore(node.state());
}

}  // namespace
}  // namespace quorate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  quorate::fuzz::Reader in(data, size);
  quorate::fuzz::Run(in);
  return 0;
}
