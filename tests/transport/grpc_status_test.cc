#include "transport/grpc_status.h"

#include <gtest/gtest.h>

namespace quorate {
namespace {

TEST(GrpcStatusTest, ToGrpcStatus_KeepsEveryCanonicalCodeAndMessage) {
  for (int code = 1; code <= 16; ++code) {
    const absl::Status in(static_cast<absl::StatusCode>(code), "why");
    const grpc::Status out = ToGrpcStatus(in);
    EXPECT_EQ(static_cast<int>(out.error_code()), code);
    EXPECT_EQ(out.error_message(), "why");
    EXPECT_EQ(FromGrpcStatus(out), in) << "code " << code;
  }
}

TEST(GrpcStatusTest, Ok_MapsToOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
}

TEST(GrpcStatusTest, NamedCodes_MatchAbseilMeaning) {
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("x")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ToGrpcStatus(absl::FailedPreconditionError("x")).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("x")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(
      FromGrpcStatus(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"))
          .code(),
      absl::StatusCode::kDeadlineExceeded);
}

TEST(GrpcStatusTest, OutOfRangeCode_BecomesUnknown) {
  // 20 is inside the value range of both enums but names no code.
  const absl::Status odd(static_cast<absl::StatusCode>(20), "odd");
  EXPECT_EQ(ToGrpcStatus(odd).error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(
      FromGrpcStatus(grpc::Status(static_cast<grpc::StatusCode>(20), "odd"))
          .code(),
      absl::StatusCode::kUnknown);
}

}  // namespace
}  // namespace quorate
