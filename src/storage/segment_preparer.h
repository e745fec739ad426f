// storage/segment_preparer.h: creates the next log segment ahead of need.
//
// Creating a segment means allocating and zero-filling it and syncing that,
// which takes a while for a large segment. A background thread does it for
// the next segment while the current one fills, under a temporary name
// (`prepared-N.wal.tmp`, removed by recovery if a crash leaves it), so the
// writer only renames it into place.
#ifndef QUORATE_STORAGE_SEGMENT_PREPARER_H_
#define QUORATE_STORAGE_SEGMENT_PREPARER_H_

#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "storage/file.h"
#include "util/mutex.h"

namespace quorate::storage {

class SegmentPreparer {
 public:
  struct Prepared {
    std::string path;  // temporary name, to be renamed
    std::unique_ptr<WritableFile> file;
  };

  // `fs` must be thread-safe and outlive this object.
  SegmentPreparer(FileSystem* fs, std::string dir, uint64_t bytes);
  ~SegmentPreparer();
  SegmentPreparer(const SegmentPreparer&) = delete;
  SegmentPreparer& operator=(const SegmentPreparer&) = delete;

  // Waits for the prepared file (or the error preparing it) and starts
  // preparing the next one.
  absl::StatusOr<Prepared> Take();

 private:
  void Run();

  FileSystem* const fs_;
  const std::string dir_;
  const uint64_t bytes_;
  Mutex mu_;
  CondVar changed_;  // ready_ or stopping_ changed
  std::optional<absl::StatusOr<Prepared>> ready_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace quorate::storage

#endif  // QUORATE_STORAGE_SEGMENT_PREPARER_H_
