#include "storage/segment_preparer.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace quorate::storage {

SegmentPreparer::SegmentPreparer(FileSystem* fs, std::string dir,
                                 uint64_t bytes)
    : fs_(fs),
      dir_(std::move(dir)),
      bytes_(bytes),
      thread_([this] { Run(); }) {}

SegmentPreparer::~SegmentPreparer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
  // A prepared file nobody took is a leftover *.tmp: remove it now (the
  // next recovery would too).
  if (ready_.has_value() && ready_->ok()) (void)fs_->Remove((*ready_)->path);
}

void SegmentPreparer::Run() {
  uint64_t n = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](SegmentPreparer* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->ready_.has_value();
          },
          this));
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
    absl::MutexLock lock(&mu_);
    ready_ = std::move(result);
  }
}

absl::StatusOr<SegmentPreparer::Prepared> SegmentPreparer::Take() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](SegmentPreparer* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
        return p->ready_.has_value();
      },
      this));
  absl::StatusOr<Prepared> out = std::move(*ready_);
  ready_.reset();  // wakes the thread to prepare the next one
  return out;
}

}  // namespace quorate::storage
