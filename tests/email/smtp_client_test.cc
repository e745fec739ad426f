// The example's SMTP client against the example's SMTP server: a message
// goes through; a server that says nothing ends a send at its deadline, or
// as soon as the caller's keep_going says so (an operator's pause stops
// sends in flight, not at their deadlines).
#include "lib/smtp_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lib/smtp_server.h"

namespace quorate_email {
namespace {

class SmtpClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { InitCurl(); }

  // A server that says nothing while silent_ is set.
  void Start(bool silent) {
    silent_ = silent;
    SmtpServerOptions o;
    o.listen = "127.0.0.1:0";
    o.hold = [this] { return silent_.load(); };
    absl::StatusOr<std::unique_ptr<SmtpServer>> s = SmtpServer::Start(
        o,
        [this](const Envelope& e) -> SmtpReply {
          std::lock_guard<std::mutex> lock(mu_);
          received_.push_back(e.data);
          return {250, "2.0.0 taken"};
        },
        nullptr);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
  }
  std::vector<std::string> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

  std::atomic<bool> silent_{false};
  std::mutex mu_;
  std::vector<std::string> received_;
  std::unique_ptr<SmtpServer> server_;
};

constexpr char kMessage[] =
    "From: <a@example.test>\r\nTo: <b@example.test>\r\nMessage-ID: "
    "<m1@example.test>\r\n\r\nhello\r\n";

TEST_F(SmtpClientTest, SendsAMessage) {
  Start(/*silent=*/false);
  SmtpClient client(server_->address(), "test");
  ASSERT_TRUE(client
                  .Send("a@example.test", {"b@example.test"}, kMessage,
                        absl::Seconds(30))
                  .ok());
  ASSERT_EQ(received().size(), 1u);
  EXPECT_NE(received()[0].find("hello"), std::string::npos);
  EXPECT_EQ(client.last_code(), 250);
}

TEST_F(SmtpClientTest, ASilentServerEndsTheSendAtItsDeadline) {
  Start(/*silent=*/true);
  SmtpClient client(server_->address(), "test");
  absl::Status s = client.Send("a@example.test", {"b@example.test"}, kMessage,
                               absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(received().empty());
}

TEST_F(SmtpClientTest, KeepGoingStopsASendInFlight) {
  Start(/*silent=*/true);
  SmtpClient client(server_->address(), "test");
  // Asked while the send waits; the third answer says stop. Were it not
  // asked while waiting, the send would end at its (distant) deadline as
  // UNAVAILABLE instead.
  int asked = 0;
  absl::Status s = client.Send("a@example.test", {"b@example.test"}, kMessage,
                               absl::Minutes(5), [&] { return ++asked < 3; });
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_EQ(asked, 3);
  // The same client sends again once the server speaks (as a processor's
  // does after a pause): the cut connection was dropped, not reused.
  silent_ = false;
  EXPECT_TRUE(client
                  .Send("a@example.test", {"b@example.test"}, kMessage,
                        absl::Seconds(30), [] { return true; })
                  .ok());
  EXPECT_EQ(received().size(), 1u);
}

// Destroying a client whose connection is still open makes curl say QUIT
// and wait for the answer, up to its own 120 s whatever the sends'
// deadlines. When the smarthost has gone silent (or away: a zone cut), a
// processor's worker waited that long to stop, and its zone's processors
// rejoined two minutes after the heal. The connection is shut down first.
// (30 s: far above what closing takes, far below curl's 120 s.)
TEST_F(SmtpClientTest, DestroyingTheClientDoesNotWaitOnASilentServer) {
  Start(/*silent=*/false);
  auto client = std::make_unique<SmtpClient>(server_->address(), "test");
  ASSERT_TRUE(client
                  ->Send("a@example.test", {"b@example.test"}, kMessage,
                         absl::Seconds(30))
                  .ok());
  silent_ = true;  // the connection stays open, cached; QUIT goes unanswered
  std::promise<void> destroyed;
  std::future<void> done = destroyed.get_future();
  std::thread t([&] {
    client.reset();
    destroyed.set_value();
  });
  EXPECT_EQ(done.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  t.join();
  EXPECT_EQ(received().size(), 1u);
}

}  // namespace
}  // namespace quorate_email
