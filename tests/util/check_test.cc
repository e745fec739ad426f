#include "util/check.h"

#include <gtest/gtest.h>

namespace quorate {
namespace {

TEST(CheckTest, Check_PassingConditionDoesNotEvaluateMessage) {
  int evaluated = 0;
  auto message = [&] {
    ++evaluated;
    return "unused";
  };
  QUORATE_CHECK(1 + 1 == 2) << message();
  QUORATE_CHECK_EQ(2, 2) << message();
  QUORATE_CHECK_LT(1, 2) << message();
  EXPECT_EQ(evaluated, 0);
}

TEST(CheckDeathTest, Check_FailureAbortsWithConditionFileAndMessage) {
  const int term = 7;
  EXPECT_DEATH(QUORATE_CHECK(term < 3) << "term went back to " << term,
               "check_test.cc:[0-9]+: check failed: term < 3 term went back "
               "to 7");
}

TEST(CheckDeathTest, CheckOp_FailurePrintsBothValues) {
  const int committed = 10;
  const int index = 4;
  EXPECT_DEATH(QUORATE_CHECK_GE(index, committed) << "commit regressed",
               "check failed: .*\\(4 vs 10\\) commit regressed");
}

}  // namespace
}  // namespace quorate
