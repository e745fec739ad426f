// The streams peers open to this member: Hello, then batches.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "transport/grpc_status.h"
#include "transport/internal.h"
#include "util/clock.h"
#include "util/thread_name.h"

namespace quorate::transport::internal {

void InStream::OnEvent(int kind, bool ok) {
  // Exactly one operation is outstanding at a time, and none once an
  // event arrives: `next` starts the next one, or the stream ends here.
  auto next = [this](absl::FunctionRef<void()> start) {
    if (!owner_->StartOperation(start)) delete this;  // shutting down
  };
  switch (kind) {
    case kRequested:
      if (!ok) {  // the server is shutting down
        delete this;
        return;
      }
      owner_->AcceptNextStream();
      next([this] { rw_.Read(&frame_, &read_); });
      return;
    case kRead:
      if (!ok) {  // the peer closed or the stream broke
        next([this] {
          rw_.Finish(greeted_ ? grpc::Status::OK : grpc::Status::CANCELLED,
                     &finished_);
        });
        return;
      }
      if (!greeted_) {
        const grpc::Status refused =
            owner_->CheckHello(frame_, context_.peer());
        if (!refused.ok()) {
          next([this, &refused] { rw_.Finish(refused, &finished_); });
          return;
        }
        greeted_ = true;
        from_ = frame_.hello().from();
        next([this] { rw_.Write(ack_, &wrote_); });
        return;
      }
      if (frame_.has_batch()) owner_->Received(from_, frame_.mutable_batch());
      next([this] { rw_.Read(&frame_, &read_); });
      return;
    case kWrote:
      if (!ok) {
        next([this] { rw_.Finish(grpc::Status::CANCELLED, &finished_); });
        return;
      }
      next([this] { rw_.Read(&frame_, &read_); });
      return;
    case kFinished:
      delete this;
      return;
  }
}

}  // namespace quorate::transport::internal
