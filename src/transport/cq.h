// transport/cq.h: the member's one completion queue, and how a service
// serves its calls on it.
//
// Every stream and call a member serves (peer streams both ways, and the
// client API) completes its operations on one gRPC completion queue,
// drained by one thread, the transport's io thread. That thread is then
// the only one in the process that polls the sockets: a message is read
// and handled by the same thread, instead of being found by one gRPC
// thread and handed to another (each hand-off is a wake-up, tens of
// microseconds on an idle virtual CPU).
//
// An event's tag is a CqTag: the object it belongs to and which of its
// operations completed. The io thread calls `handler->OnEvent(kind, ok)`.
//
//   class Call final : public CqHandler {
//     void OnEvent(int kind, bool ok) override;   // on the io thread
//     CqTag done_{this, kDone};
//   };
#ifndef QUORATE_TRANSPORT_CQ_H_
#define QUORATE_TRANSPORT_CQ_H_

#include "absl/functional/function_ref.h"

namespace grpc {
class Service;
class ServerCompletionQueue;
}  // namespace grpc

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QUORATE_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define QUORATE_TSAN 1
#endif
#ifdef QUORATE_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif

namespace quorate::transport {

// Debian's gRPC is not built with ThreadSanitizer, which therefore cannot
// see that starting an operation happens before the io thread handles its
// completion. Whoever starts an operation on `queue` calls
// TsanStarting(queue) first, and the io thread calls TsanTaken(queue) after
// each event: TSan then orders everything before the start (building the
// call, its tags) before the handling. No-ops in other builds.
inline void TsanStarting(const void* queue) {
#ifdef QUORATE_TSAN
  __tsan_release(const_cast<void*>(queue));
#else
  (void)queue;
#endif
}
inline void TsanTaken(const void* queue) {
#ifdef QUORATE_TSAN
  __tsan_acquire(const_cast<void*>(queue));
#else
  (void)queue;
#endif
}

class CqHandler {
 public:
  virtual void OnEvent(int kind, bool ok) = 0;

 protected:
  ~CqHandler() = default;
};

struct CqTag {
  CqHandler* handler;
  int kind;
};

// The queue, as a service sees it.
class CallQueue {
 public:
  virtual grpc::ServerCompletionQueue* cq() = 0;
  // Runs `start`, which begins one operation on the queue (a Request, a
  // Finish, a Read...), unless the queue is shutting down: then it returns
  // false without running it, and the caller drops its call (nothing may
  // begin after the queue's Shutdown(); the server has cancelled every
  // call by then). Any thread.
  virtual bool StartOperation(absl::FunctionRef<void()> start) = 0;

 protected:
  ~CallQueue() = default;
};

// A service with asynchronous methods, served by the transport's listener.
class AsyncService {
 public:
  virtual ~AsyncService() = default;
  // Registered with the server before it starts.
  virtual grpc::Service* grpc_service() = 0;
  // The server is running: request the first calls on `queue`. The queue
  // outlives every call it completes.
  virtual void Start(CallQueue* queue) = 0;
};

// A service with synchronous methods (gRPC's own thread pool runs them),
// served by the transport's listener beside the asynchronous ones.
class SyncService final : public AsyncService {
 public:
  explicit SyncService(grpc::Service* service) : service_(service) {}
  grpc::Service* grpc_service() override { return service_; }
  void Start(CallQueue*) override {}

 private:
  grpc::Service* const service_;
};

}  // namespace quorate::transport

#endif  // QUORATE_TRANSPORT_CQ_H_
