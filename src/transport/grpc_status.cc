#include "transport/grpc_status.h"

#include <string>

namespace quorate {

// The codes 0..16 are identical in both enums; anything else is a bug in the
// peer and becomes UNKNOWN rather than an out-of-range enum value.
namespace {
constexpr int kMaxCanonicalCode = 16;
}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  const auto grpc_code = code >= 0 && code <= kMaxCanonicalCode
                             ? static_cast<grpc::StatusCode>(code)
                             : grpc::StatusCode::UNKNOWN;
  return grpc::Status(grpc_code, std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  const int code = static_cast<int>(status.error_code());
  const auto absl_code = code >= 0 && code <= kMaxCanonicalCode
                             ? static_cast<absl::StatusCode>(code)
                             : absl::StatusCode::kUnknown;
  return absl::Status(absl_code, status.error_message());
}

}  // namespace quorate
