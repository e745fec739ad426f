// tests/util/flood.h: a load generator that keeps many asynchronous gRPC
// calls in flight at once, for the overload test and kv_bench's flood.
//
//   FloodResult r = Flood(10000, absl::Seconds(10),
//       [&](uint64_t i, grpc::CompletionQueue* cq, void* tag) {
//         return StartMyCall(i, cq, tag);   // a FloodCall finishing on tag
//       });
#ifndef QUORATE_TESTS_UTIL_FLOOD_H_
#define QUORATE_TESTS_UTIL_FLOOD_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace quorate::testing {

// One call in flight: the flood owns it until its completion arrives.
struct FloodCall {
  virtual ~FloodCall() = default;
  grpc::ClientContext context;
  grpc::Status status;
};

// A unary call answered by a `Response`.
template <class Response>
struct UnaryFloodCall final : FloodCall {
  Response response;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> rpc;
};

// Starts a unary call: `start(context)` returns its reader (PrepareAsync
// or Async of a stub); it finishes on `tag`, with `deadline`.
template <class Response, class StartFn>
std::unique_ptr<FloodCall> StartUnaryFloodCall(StartFn start, void* tag,
                                               absl::Duration deadline) {
  auto c = std::make_unique<UnaryFloodCall<Response>>();
  c->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  c->rpc = start(&c->context);
  c->rpc->Finish(&c->response, &c->status, tag);
  return c;
}

struct FloodResult {
  uint64_t ok = 0;
  uint64_t errors = 0;
  // Failed calls by status code: how many, and one message.
  std::map<int, std::pair<uint64_t, std::string>> by_code;
  // Successful completions in each whole second of the flood.
  std::vector<uint64_t> ok_per_second;
  double seconds = 0;
  double ops_per_second() const {
    return seconds > 0 ? static_cast<double>(ok) / seconds : 0;
  }
  std::string ErrorSummary() const;
};

using StartFloodCall = std::function<std::unique_ptr<FloodCall>(
    uint64_t i, grpc::CompletionQueue* cq, void* tag)>;

// Keeps `in_flight` calls going for `duration`: each completion starts the
// next call at once (numbered 0, 1, 2, ...). Completions are drained by
// two threads, which run from the first call on. Returns once every call
// has completed.
FloodResult Flood(int in_flight, absl::Duration duration,
                  const StartFloodCall& start);

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_FLOOD_H_
