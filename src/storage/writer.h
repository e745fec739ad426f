// storage/writer.h: persists Readies on a thread of its own, so that the
// node loop never waits for the disk.
//
//   GroupCommitWriter writer(storage.get());
//   writer.Submit({rd.snapshot, rd.entries, rd.hard_state,
//                  [&](absl::Status s) { post_to_loop(...); }});
//
// Everything queued while a sync runs is written and synced together: one
// fdatasync per batch (group commit). `done` runs on the writer thread,
// after the request's writes are durable (or failed), in submission order
// and never under a lock. The queue is bounded: Submit() answers
// RESOURCE_EXHAUSTED rather than letting it grow.
#ifndef QUORATE_STORAGE_WRITER_H_
#define QUORATE_STORAGE_WRITER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "raft/raft.h"
#include "storage/storage.h"
#include "util/mutex.h"

namespace quorate::storage {

class GroupCommitWriter {
 public:
  struct Request {
    std::optional<raft::Snapshot> snapshot;
    std::vector<raft::EntryPtr> entries;
    std::optional<raft::HardState> hard_state;
    // Run on the writer thread after everything queued before this request
    // is durable (and before anything queued after it is written): saving
    // a snapshot and compacting, say. Its status goes to `done`.
    std::function<absl::Status(Storage*)> task;
    std::function<void(absl::Status)> done;
  };

  // `storage` is used only from the writer thread from now on, and must
  // outlive the writer.
  explicit GroupCommitWriter(Storage* storage, size_t max_queued = 4096);
  // Finishes what is queued, then stops.
  ~GroupCommitWriter();
  GroupCommitWriter(const GroupCommitWriter&) = delete;
  GroupCommitWriter& operator=(const GroupCommitWriter&) = delete;

  absl::Status Submit(Request request);

  // Batches synced so far (one fdatasync each).
  uint64_t syncs() const;

 private:
  void Run();

  Storage* const storage_;
  const size_t max_queued_;
  mutable Mutex mu_;
  CondVar work_;  // signalled when a request is queued or on stop
  std::deque<Request> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t syncs_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace quorate::storage

#endif  // QUORATE_STORAGE_WRITER_H_
