#include "storage/writer.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "util/thread_name.h"

namespace quorate::storage {

GroupCommitWriter::GroupCommitWriter(Storage* storage, size_t max_queued)
    : storage_(storage), max_queued_(max_queued), thread_([this] {
        SetThreadName("q-storage");
        Run();
      }) {}

GroupCommitWriter::~GroupCommitWriter() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  work_.SignalAll();
  thread_.join();
}

absl::Status GroupCommitWriter::Submit(Request request) {
  {
    MutexLock lock(&mu_);
    if (stopping_) return absl::FailedPreconditionError("writer is stopping");
    if (queue_.size() >= max_queued_) {
      return absl::ResourceExhaustedError(
          absl::StrCat(queue_.size(), " writes are already queued"));
    }
    queue_.push_back(std::move(request));
  }
  work_.Signal();
  return absl::OkStatus();
}

uint64_t GroupCommitWriter::syncs() const {
  MutexLock lock(&mu_);
  return syncs_;
}

void GroupCommitWriter::Run() {
  while (true) {
    std::deque<Request> batch;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && queue_.empty()) work_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping, and nothing left
      batch.swap(queue_);
    }
    // Write everything up to the next task, then one sync. A failure fails
    // this request and every later one: the storage refuses writes after
    // an error.
    auto from = batch.begin();
    while (from != batch.end()) {
      auto to = from;
      absl::Status status;
      for (; to != batch.end() && !to->task; ++to) {
        if (status.ok()) {
          status = storage_->Write(to->snapshot, to->entries, to->hard_state);
        }
      }
      // Every request is durable before its `done`; a task runs only after
      // everything before it is durable.
      if (to != from) {
        if (status.ok()) status = storage_->Sync();
        {
          MutexLock lock(&mu_);
          ++syncs_;
        }
        for (auto r = from; r != to; ++r) {
          if (r->done) r->done(status);
        }
      }
      if (to != batch.end()) {
        absl::Status s = storage_->error();
        if (s.ok()) s = to->task(storage_);
        if (to->done) to->done(s);
        ++to;
      }
      from = to;
    }
  }
}

}  // namespace quorate::storage
