#include "util/status_macros.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace quorate {
namespace {

absl::Status FailIf(bool fail) {
  return fail ? absl::DataLossError("torn record") : absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool fail, int value) {
  if (fail) return absl::UnavailableError("no leader");
  return std::make_unique<int>(value);
}

absl::Status Chain(bool fail_first, bool fail_second, int* calls) {
  QUORATE_RETURN_IF_ERROR(FailIf(fail_first));
  ++*calls;
  QUORATE_RETURN_IF_ERROR(FailIf(fail_second));
  ++*calls;
  return absl::OkStatus();
}

absl::StatusOr<int> AddMoveOnly(bool fail_a, bool fail_b) {
  QUORATE_ASSIGN_OR_RETURN(std::unique_ptr<int> a, MakeInt(fail_a, 2));
  QUORATE_ASSIGN_OR_RETURN(auto b, MakeInt(fail_b, 3));
  return *a + *b;
}

TEST(StatusMacrosTest, ReturnIfError_StopsAtFirstError) {
  int calls = 0;
  EXPECT_TRUE(Chain(false, false, &calls).ok());
  EXPECT_EQ(calls, 2);
  calls = 0;
  EXPECT_EQ(Chain(true, false, &calls).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(calls, 0);
  calls = 0;
  EXPECT_EQ(Chain(false, true, &calls).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(calls, 1);
}

TEST(StatusMacrosTest, AssignOrReturn_MovesValueOrReturnsStatus) {
  ASSERT_TRUE(AddMoveOnly(false, false).ok());
  EXPECT_EQ(*AddMoveOnly(false, false), 5);
  EXPECT_EQ(AddMoveOnly(true, false).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(AddMoveOnly(false, true).status().message(), "no leader");
}

}  // namespace
}  // namespace quorate
