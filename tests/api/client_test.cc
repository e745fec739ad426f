// quorate::Client against members started through the public API, and
// against a scripted fake member for the cases a real cluster cannot be
// made to show on cue.
#include "quorate/client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "quorate/member.h"
#include "util/port.h"
#include "wire/client.grpc.pb.h"

namespace quorate {
namespace {

using testing::PortReservation;

class ClientClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-client-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    for (int i = 1; i <= 3; ++i)
      ports_.push_back(std::make_unique<PortReservation>());
    std::vector<PeerSpec> peers;
    for (int i = 1; i <= 3; ++i) {
      peers.push_back({absl::StrCat("n", i), "az-a", ports_[i - 1]->address()});
    }
    for (int i = 1; i <= 3; ++i) {
      MemberOptions o;
      o.id = absl::StrCat("n", i);
      o.zone = "az-a";
      o.cluster_id = "client-test";
      o.listen_address = ports_[i - 1]->address();
      o.peers = peers;
      o.data_dir = absl::StrCat(root_, "/n", i);
      o.heartbeat_interval = absl::Milliseconds(20);
      o.election_timeout = absl::Milliseconds(200);
      o.wal_segment_bytes = 1 << 20;
      o.log = [](absl::string_view) {};
      auto m = Member::Start(o);
      ASSERT_TRUE(m.ok()) << m.status();
      members_.push_back(*std::move(m));
    }
  }
  void TearDown() override {
    members_.clear();
    std::filesystem::remove_all(root_);
  }
  // A follower's address, once there is a leader (polled: the members run
  // on their own).
  std::string FollowerAddress() {
    const absl::Time until = absl::Now() + absl::Seconds(20);
    while (absl::Now() < until) {
      for (size_t i = 0; i < members_.size(); ++i) {
        MemberStatus s = members_[i]->GetStatus();
        if (!s.leader_id.empty() && s.role == Role::kFollower) {
          return ports_[i]->address();
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return "";
  }

  std::string root_;
  std::vector<std::unique_ptr<PortReservation>> ports_;
  std::vector<std::unique_ptr<Member>> members_;
};

TEST_F(ClientClusterTest, FromAFollower_FollowsTheLeaderAndReportsErrors) {
  const std::string follower = FollowerAddress();
  ASSERT_FALSE(follower.empty());
  ClientOptions o;
  o.endpoints = {follower};
  o.timeout = absl::Seconds(10);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<uint64_t> rev = (*c)->Put("owner", "n2");
  ASSERT_TRUE(rev.ok()) << rev.status();
  absl::StatusOr<KeyValue> kv = (*c)->Get("owner");
  ASSERT_TRUE(kv.ok()) << kv.status();
  EXPECT_EQ(kv->value, "n2");
  EXPECT_EQ(kv->revision, *rev);
  EXPECT_GE(kv->read_revision, *rev);
  // A conflict is ABORTED (restart the read-modify-write), and the client
  // does not retry it as it retries a leader change.
  EXPECT_EQ((*c)->CompareAndSet("owner", *rev + 5, "x").status().code(),
            absl::StatusCode::kAborted);
  absl::StatusOr<uint64_t> cas = (*c)->CompareAndSet("owner", *rev, "n3");
  ASSERT_TRUE(cas.ok()) << cas.status();
  EXPECT_GT(*cas, *rev);
  EXPECT_EQ((*c)->Get("nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE((*c)->Delete("owner").ok());
  EXPECT_EQ((*c)->Delete("owner").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*c)->Put("", "v").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*c)->Put("k", std::string((1 << 20) + 1, 'v')).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<ClusterMember>> ms = (*c)->Members();
  ASSERT_TRUE(ms.ok()) << ms.status();
  EXPECT_EQ(ms->size(), 3u);
  int leaders = 0;
  for (const ClusterMember& m : *ms) leaders += m.role == "leader";
  EXPECT_EQ(leaders, 1);
}

TEST_F(ClientClusterTest, ManyThreads_ShareOneClient) {
  ClientOptions o;
  for (auto& p : ports_) o.endpoints.push_back(p->address());
  o.timeout = absl::Seconds(10);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        if ((*c)->Put(absl::StrCat("t", t, "/", i), "v").ok()) ++ok;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), 80);
  absl::StatusOr<KeyValue> kv = (*c)->Get("t7/9");
  ASSERT_TRUE(kv.ok());
  EXPECT_GE(kv->read_revision, 80u);
}

// A member that answers as the test scripts it.
class FakeMember final : public client::Kv::Service {
 public:
  grpc::Status Put(grpc::ServerContext* ctx, const client::PutRequest*,
                   client::PutResponse*) override {
    // The client retries until its deadline: only the first call tells.
    if (!entered_.HasBeenNotified()) entered_.Notify();
    release_.WaitForNotification();
    if (refuse_) ctx->AddTrailingMetadata("quorate-refused", "1");
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "scripted");
  }
  absl::Notification entered_;
  absl::Notification release_;
  bool refuse_ = false;
};

struct FakeServer {
  explicit FakeServer(FakeMember* service) {
    grpc::ServerBuilder b;
    b.AddListeningPort(port.address(), grpc::InsecureServerCredentials());
    b.RegisterService(service);
    server = b.BuildAndStart();
  }
  ~FakeServer() { server->Shutdown(); }
  PortReservation port;
  std::unique_ptr<grpc::Server> server;
};

TEST(ClientTest, InFlightBeyondTheBound_IsResourceExhausted) {
  FakeMember fake;
  FakeServer server(&fake);
  ClientOptions o;
  o.endpoints = {server.port.address()};
  o.max_in_flight = 1;
  o.timeout = absl::Milliseconds(500);
  auto c = Client::Create(o);
  ASSERT_TRUE(c.ok());
  std::thread first([&] { (void)(*c)->Put("k", "v"); });
  fake.entered_.WaitForNotification();  // the first call is in flight
  EXPECT_EQ((*c)->Get("k").status().code(),
            absl::StatusCode::kResourceExhausted);
  fake.release_.Notify();
  first.join();
}

TEST(ClientTest, WriteWithoutAnAnswer_SaysItsOutcomeIsUnknown) {
  for (bool refused : {false, true}) {
    FakeMember fake;
    fake.refuse_ = refused;
    fake.release_.Notify();
    FakeServer server(&fake);
    ClientOptions o;
    o.endpoints = {server.port.address()};
    o.timeout = absl::Milliseconds(300);
    auto c = Client::Create(o);
    ASSERT_TRUE(c.ok());
    const absl::Status s = (*c)->Put("k", "v").status();
    // Only a member that refused before proposing proves nothing happened;
    // otherwise the outcome is unknown, and the code says so (UNKNOWN), not
    // only the text.
    EXPECT_EQ(s.code(), refused ? absl::StatusCode::kUnavailable
                                : absl::StatusCode::kUnknown)
        << s;
    EXPECT_EQ(s.message().find("outcome is unknown") != absl::string_view::npos,
              !refused)
        << s;
  }
}

TEST(ClientTest, Create_RefusesBadOptions) {
  EXPECT_EQ(Client::Create({}).status().code(),
            absl::StatusCode::kInvalidArgument);
  ClientOptions o;
  o.endpoints = {"127.0.0.1:1"};
  o.tls.ca_file = "/nonexistent";
  EXPECT_EQ(Client::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  // All three, through the one PEM loader the members use: the message
  // names the file it could not read.
  o.tls = {"/nonexistent-ca", "/nonexistent-cert", "/nonexistent-key"};
  const absl::Status s = Client::Create(o).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("/nonexistent-ca"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace quorate
