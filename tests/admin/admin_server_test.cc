// The admin HTTP server under file-descriptor exhaustion: accept() fails
// with EMFILE while the process has no descriptor left, and the server
// must serve again once descriptors are free (it retries, with backoff,
// instead of giving up on its listener).
#include "admin/admin_server.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/time/clock.h"
#include "util/process.h"

namespace quorate::admin {
namespace {

int Port(const std::string& address) {
  return std::stoi(address.substr(address.rfind(':') + 1));
}

size_t OpenDescriptors() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(AdminServerTest, SurvivesRunningOutOfFileDescriptors) {
  auto server = AdminServer::Start("127.0.0.1:0", [] { return MemberView(); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = Port((*server)->address());
  ASSERT_EQ(testing::HttpGet(port, "/healthz"), "ok\n");

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = OpenDescriptors() + 8;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  // Connect until this process has no descriptor left: the server's
  // accepts then fail for the connections still in its backlog.
  std::vector<int> clients;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while ((*server)->accept_errors() == 0 && absl::Now() < until) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      // The server took the last descriptor: free one, so that the next
      // connection takes it and leaves the server none to accept with.
      if (!clients.empty()) {
        ::close(clients.back());
        clients.pop_back();
      }
      continue;
    }
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      continue;
    }
    clients.push_back(fd);
  }
  ASSERT_GT((*server)->accept_errors(), 0u)
      << "the server never ran out of descriptors";
  for (int fd : clients) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  // It serves again (within its backoff of at most a second).
  std::string body;
  const absl::Time serve_by = absl::Now() + absl::Seconds(10);
  while ((body = testing::HttpGet(port, "/healthz")) != "ok\n" &&
         absl::Now() < serve_by) {
  }
  EXPECT_EQ(body, "ok\n");
  (*server)->Stop();
}

}  // namespace
}  // namespace quorate::admin

namespace quorate::admin {
namespace {

// /ui serves the self-contained page and /ui/state the source's document;
// a server without a source serves neither.
TEST(AdminServerTest, ServesTheDashboardWhenGivenItsState) {
  auto server = AdminServer::Start(
      "127.0.0.1:0", [] { return MemberView(); },
      [] { return std::string("{\"self\": \"n1\"}"); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = Port((*server)->address());
  const std::string page = testing::HttpGet(port, "/ui");
  EXPECT_EQ(page.rfind("<!doctype html>", 0), 0u) << page.substr(0, 80);
  EXPECT_NE(page.find("fetch(\"/ui/state\""), std::string::npos);
  // Nothing fetched from elsewhere: no absolute URL in the page.
  EXPECT_EQ(page.find("http://"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(testing::HttpGet(port, "/ui/state"), "{\"self\": \"n1\"}");

  auto bare = AdminServer::Start("127.0.0.1:0", [] { return MemberView(); });
  ASSERT_TRUE(bare.ok());
  const int bare_port = Port((*bare)->address());
  EXPECT_EQ(testing::HttpGet(bare_port, "/ui").find("<!doctype"),
            std::string::npos);
  EXPECT_EQ(testing::HttpGet(bare_port, "/ui/state"),
            "not found; try /healthz, /readyz, /status, /metrics or /ui\n");
}

}  // namespace
}  // namespace quorate::admin
