#include "quorate/version.h"

#include <gtest/gtest.h>

#include <string>

namespace quorate {
namespace {

TEST(VersionTest, Version_IsTheProjectVersion) {
  EXPECT_EQ(std::string(Version()), QUORATE_EXPECTED_VERSION);
}

TEST(VersionTest, BuildInfo_NamesProtobufAndGrpc) {
  const BuildInfo info = GetBuildInfo();
  EXPECT_EQ(info.version, Version());
  ASSERT_EQ(info.dependencies.size(), 2u);
  EXPECT_EQ(info.dependencies[0].first, "protobuf");
  EXPECT_EQ(info.dependencies[0].second.substr(0, 2), "3.");
  EXPECT_EQ(info.dependencies[1].first, "grpc");
  EXPECT_EQ(info.dependencies[1].second.substr(0, 2), "1.");
}

}  // namespace
}  // namespace quorate
