// A member serving plaintext beyond loopback says so, in one line.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "transport/internal.h"

namespace quorate::transport::internal {
namespace {

std::vector<std::string> Warnings(const std::string& listen, TlsFiles tls) {
  std::vector<std::string> lines;
  Transport::Options o;
  o.listen = listen;
  o.tls = tls;
  o.log = [&](const std::string& line) { lines.push_back(line); };
  WarnIfPlaintextOnNetwork(o);
  return lines;
}

TEST(PlaintextWarningTest, OneLineBeyondLoopbackOnly) {
  const std::vector<std::string> beyond = Warnings("10.0.0.1:7000", {});
  ASSERT_EQ(beyond.size(), 1u);
  EXPECT_NE(beyond[0].find("plaintext on 10.0.0.1:7000"), std::string::npos);
  EXPECT_NE(beyond[0].find("--tls_ca"), std::string::npos);
  EXPECT_EQ(Warnings("0.0.0.0:7000", {}).size(), 1u);  // every address
  for (const char* loopback :
       {"127.0.0.1:0", "127.0.1.1:7000", "localhost:7000", "[::1]:7000"}) {
    EXPECT_TRUE(Warnings(loopback, {}).empty()) << loopback;
  }
  EXPECT_TRUE(
      Warnings("10.0.0.1:7000", {"ca.pem", "n1.pem", "n1.key"}).empty());
}

}  // namespace
}  // namespace quorate::transport::internal
