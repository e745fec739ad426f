#include "storage/segment_preparer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/thread_name.h"

namespace quorate::storage {

SegmentPreparer::SegmentPreparer(FileSystem* fs, std::string dir,
                                 uint64_t bytes)
    : fs_(fs), dir_(std::move(dir)), bytes_(bytes), thread_([this] {
        SetThreadName("q-segments");
        Run();
      }) {}

SegmentPreparer::~SegmentPreparer() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  changed_.SignalAll();
  thread_.join();
  // A prepared file nobody took is a leftover *.tmp: remove it now (the
  // next recovery would too).
  if (ready_.has_value() && ready_->ok()) (void)fs_->Remove((*ready_)->path);
}

void SegmentPreparer::Run() {
  uint64_t n = 0;
  while (true) {
    {
      MutexLock lock(&mu_);
      while (!stopping_ && ready_.has_value()) changed_.Wait(&mu_);
      if (stopping_) return;
    }
    const std::string path =
        JoinPath(dir_, absl::StrCat("prepared-", ++n, ".wal.tmp"));
    absl::StatusOr<Prepared> result;
    (void)fs_->Remove(path);
    auto file = fs_->OpenWritable(path, /*create=*/true, bytes_);
    absl::Status s = file.status();
    if (s.ok()) s = (*file)->Sync();
    if (s.ok()) {
      result = Prepared{path, *std::move(file)};
    } else {
      result = s;
    }
    {
      MutexLock lock(&mu_);
      ready_ = std::move(result);
    }
    changed_.SignalAll();
  }
}

absl::StatusOr<SegmentPreparer::Prepared> SegmentPreparer::Take() {
  absl::StatusOr<Prepared> out;
  {
    MutexLock lock(&mu_);
    while (!ready_.has_value()) changed_.Wait(&mu_);
    out = std::move(*ready_);
    ready_.reset();
  }
  changed_.SignalAll();  // the thread prepares the next one
  return out;
}

}  // namespace quorate::storage
