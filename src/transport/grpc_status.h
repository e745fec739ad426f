// transport/grpc_status.h: absl::Status <-> grpc::Status.
//
// gRPC 1.51 does not convert between the two. The numeric codes are the
// same in both (they come from google.rpc.Code), so the conversion keeps the
// code and the message. Status payloads are not carried across.
#ifndef QUORATE_TRANSPORT_GRPC_STATUS_H_
#define QUORATE_TRANSPORT_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace quorate {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace quorate

#endif  // QUORATE_TRANSPORT_GRPC_STATUS_H_
