// A process that is not a member reaches a member's port (this test
// process, against quorate-node children). In plaintext it can say Hello as
// any member, so it sends malformed messages of every kind a review found
// to crash or mislead a member: nothing crashes, each is counted, and the
// cluster keeps committing. With mutual TLS its forged Hellos (a client's
// certificate, another member's, another CA's) are refused without a word
// about the cluster, and no member's term moves.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "cmd/node_processes.h"
#include "node/node.h"
#include "quorate/version.h"
#include "transport/tls.h"
#include "transport/transport.h"
#include "util/certs.h"
#include "util/process.h"
#include "util/sanitizers.h"
#include "wire/client.grpc.pb.h"
#include "wire/peer.grpc.pb.h"

namespace quorate {
namespace {

using testing::HttpGet;
using testing::JsonInt;
using testing::JsonString;
using testing::MakeCertificates;
using testing::QuorateNodeTest;
using testing::ReadAll;

class HostilePeerTest : public QuorateNodeTest {
 protected:
  // A Hello as member `as` to member `to`, with the fixture's settings.
  peer::Hello HelloAs(const std::string& as, const std::string& to) {
    peer::Hello h;
    h.set_cluster_id("proc");
    h.set_from(node::MemberId(as));
    h.set_from_name(as);
    h.set_to(node::MemberId(to));
    h.set_election_timeout_ms(hello_timeout_ms_);  // election_timeout_
    h.set_max_clock_drift_ppm(10'000);
    return h;
  }

  // Opens a peer stream to member `to`, says `hello`, then sends `batch` if
  // it has messages. Returns how the stream ended.
  grpc::Status Speak(const std::string& to,
                     std::shared_ptr<grpc::ChannelCredentials> creds,
                     const peer::Hello& hello,
                     const raft::MessageBatch& batch = {}) {
    auto channel = grpc::CreateChannel(members_[to].port->address(), creds);
    auto stub = peer::Peer::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    auto stream = stub->Stream(&ctx);
    peer::PeerFrame frame;
    *frame.mutable_hello() = hello;
    peer::StreamAck ack;
    if (stream->Write(frame) && stream->Read(&ack)) {
      if (batch.messages_size() == 0) {
        ctx.TryCancel();
        stream->Finish().ok();
        return grpc::Status::OK;  // greeted
      }
      frame.Clear();
      *frame.mutable_batch() = batch;
      stream->Write(frame);
      // The stream stays open (acks only) until the member ends it, or
      // the deadline does.
      while (stream->Read(&ack)) {
      }
    }
    return stream->Finish();
  }

  // The members' --election_timeout, in milliseconds.
  void SetElectionTimeoutMs(int ms) {
    hello_timeout_ms_ = ms;
    election_timeout_ = absl::StrCat(ms, "ms");
  }
  int hello_timeout_ms_ = 200;

  int64_t Term(const std::string& name) {
    return JsonInt(Status(name), "term");
  }

  // quorate_peer_messages_refused_total{peer="..."} at member `at`.
  int64_t Refused(const std::string& at, const std::string& peer) {
    const std::string metrics = HttpGet(AdminPort(at), "/metrics");
    const std::string key = absl::StrCat(
        "quorate_peer_messages_refused_total{peer=\"", peer, "\"} ");
    const size_t at_key = metrics.find(key);
    if (at_key == std::string::npos) return -1;
    int64_t n = -1;
    const size_t from = at_key + key.size();
    (void)absl::SimpleAtoi(
        metrics.substr(from, metrics.find('\n', from) - from), &n);
    return n;
  }

  bool AllRunning() {
    for (auto& [name, m] : members_) {
      if (m.process->Wait(absl::ZeroDuration()).has_value()) return false;
    }
    return true;
  }
};

using testing::kThreadSanitizer;

raft::Message Msg(raft::MessageType type, uint64_t from, uint64_t to,
                  uint64_t term) {
  raft::Message m;
  m.set_type(type);
  m.set_from(from);
  m.set_to(to);
  m.set_term(term);
  return m;
}

TEST_F(HostilePeerTest, Plaintext_MalformedMessagesCrashNothing) {
  // The refusals that depend on the leader's state need the same leader
  // throughout: a longer T keeps a loaded machine (sanitizers, a parallel
  // suite) from electing another one meanwhile.
  SetElectionTimeoutMs(1000);
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  const std::string victim = leader;  // the member with most to lose
  const std::string as = leader == "n1" ? "n2" : "n1";
  // The member the test speaks as is stopped meanwhile. Otherwise its own
  // reconnections (every few ms once its streams are refused) replace the
  // test's stream before its batch is read: that batch is never seen, and
  // the count of refusals comes out one short now and then.
  members_[as].process->Signal(SIGTERM);
  ASSERT_TRUE(members_[as].process->Wait(absl::Seconds(20)).has_value());
  const uint64_t from = node::MemberId(as);
  const uint64_t to = node::MemberId(victim);
  const uint64_t term = static_cast<uint64_t>(Term(victim));
  const uint64_t last =
      static_cast<uint64_t>(JsonInt(Status(victim), "last_log_index"));
  auto creds = grpc::InsecureChannelCredentials();
  ASSERT_TRUE(Speak(victim, creds, HelloAs(as, victim)).ok())
      << "plaintext: a Hello with the right settings is accepted";

  std::vector<std::pair<std::string, raft::Message>> cases;
  {
    raft::Message m = Msg(raft::MESSAGE_TYPE_APPEND, from, to, term + 1);
    m.set_index(last);
    m.set_log_term(term);
    for (uint64_t i : {last + 1, last + 3}) {  // not contiguous
      raft::Entry* e = m.add_entries();
      e->set_index(i);
      e->set_term(term + 1);
    }
    cases.emplace_back("non-contiguous append", m);
  }
  {
    raft::Message m = Msg(raft::MESSAGE_TYPE_APPEND, from, to,
                          std::numeric_limits<uint64_t>::max());
    cases.emplace_back("term 2^64-1", m);
  }
  {
    raft::Message m = Msg(raft::MESSAGE_TYPE_APPEND_RESPONSE, from, to, term);
    m.set_index(last + 1'000'000);
    cases.emplace_back("acknowledgement beyond the log", m);
  }
  {
    raft::Message m = Msg(raft::MESSAGE_TYPE_APPEND, from, to, term);
    m.set_index(last);
    m.set_log_term(term);
    cases.emplace_back("a second leader in the term", m);
  }
  {
    raft::Message m = Msg(raft::MESSAGE_TYPE_SNAPSHOT, from, to, term + 1);
    m.mutable_snapshot()->mutable_metadata()->set_index(last + 10);
    m.mutable_snapshot()->mutable_metadata()->set_term(term);
    m.mutable_snapshot()->set_total_size(0);
    m.mutable_snapshot()->set_last(true);
    cases.emplace_back("snapshot without voters", m);
  }
  {
    raft::Message m = Msg(raft::MESSAGE_TYPE_APPEND, from, to, term + 1);
    m.set_index(last);
    m.set_log_term(term);
    raft::Entry* e = m.add_entries();
    e->set_index(last + 1);
    e->set_term(term + 1);
    e->set_type(raft::ENTRY_TYPE_CONF_CHANGE);
    e->set_data("\xff\xff not a change");
    cases.emplace_back("unreadable configuration entry", m);
  }
  {
    raft::Message m =
        Msg(raft::MESSAGE_TYPE_HEARTBEAT_RESPONSE, from, to, term);
    m.set_round(1'000'000'000);
    cases.emplace_back("acknowledgement of a round never started", m);
  }
  {
    raft::Message m = Msg(static_cast<raft::MessageType>(77), from, to, term);
    cases.emplace_back("unknown type", m);
  }
  {
    // Speaks for another member than the one that said Hello.
    raft::Message m = Msg(raft::MESSAGE_TYPE_VOTE, 424242, to, term + 1);
    m.set_transfer(true);
    cases.emplace_back("a stranger's transfer vote", m);
  }
  for (const auto& [what, m] : cases) {
    raft::MessageBatch batch;
    *batch.add_messages() = m;
    // Ended by the member: at once if malformed (INVALID_ARGUMENT), or
    // once the core refused it (CANCELLED); never left to the deadline.
    const grpc::Status s = Speak(victim, creds, HelloAs(as, victim), batch);
    EXPECT_TRUE(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                s.error_code() == grpc::StatusCode::CANCELLED)
        << what << ": " << s.error_code() << " " << s.error_message();
    ASSERT_EQ(static_cast<uint64_t>(Term(victim)), term)
        << "the leader changed under the test: the state-dependent cases "
           "no longer apply";
  }
  // Each was counted as refused, in /metrics.
  EXPECT_TRUE(Await([&] {
    return Refused(victim, as) >= static_cast<int64_t>(cases.size());
  })) << Refused(victim, as);
  // Nothing crashed, and the cluster keeps committing through its leader
  // (with the member spoken for back).
  Start(as);
  EXPECT_TRUE(AllRunning());
  const Ctl put =
      Quoratectl({"--endpoints=" + Endpoints(), "put", "after", "hostile"});
  EXPECT_EQ(put.exit, 0) << put.out;
  const Ctl get = Quoratectl({"--endpoints=" + Endpoints(), "get", "after"});
  EXPECT_EQ(get.exit, 0) << get.out;
  EXPECT_NE(get.out.find("hostile"), std::string::npos) << get.out;
  EXPECT_NE(ReadAll(Log(victim)).find("refused a message from member '" + as),
            std::string::npos);
  EXPECT_TRUE(AllRunning());
}

TEST_F(HostilePeerTest, MutualTls_ForgedHellosAreRefusedAndTermsStay) {
  Define(3);
  // The operator's script (docs/operations.md) makes the cluster's own.
  ASSERT_EQ(
      std::system(("'" QUORATE_SOURCE_DIR "/scripts/make-certs.sh' '" + root_ +
                   "' --members n1,n2,n3 --clients ops >/dev/null")
                      .c_str()),
      0);
  ASSERT_TRUE(MakeCertificates(root_, "rogue-ca", {"rogue"},
                               {{"rogue", transport::MemberUri("n3")}}));
  for (auto& [name, m] : members_) {
    m.extra_flags = {"--tls_ca=" + root_ + "/ca.pem",
                     "--tls_cert=" + root_ + "/" + name + ".pem",
                     "--tls_key=" + root_ + "/" + name + ".key"};
    Start(name);
  }
  const std::string leader = AwaitLeader();
  ASSERT_FALSE(leader.empty());
  std::map<std::string, int64_t> terms;
  for (const auto& [name, m] : members_) terms[name] = Term(name);
  const std::string as = leader == "n3" ? "n1" : "n3";

  auto creds = [&](const std::string& ca, const std::string& cert) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ReadAll(root_ + "/" + ca + ".pem");
    o.pem_cert_chain = ReadAll(root_ + "/" + cert + ".pem");
    o.pem_private_key = ReadAll(root_ + "/" + cert + ".key");
    return grpc::SslCredentials(o);
  };
  // The control: with its own certificate, a Hello as `as` is accepted.
  ASSERT_TRUE(Speak(leader, creds("ca", as), HelloAs(as, leader)).ok());

  struct Attempt {
    std::string what;
    std::string ca, cert;
    grpc::StatusCode code;
  };
  const std::string other = as == "n1" ? "n2" : "n1";
  for (const Attempt& a :
       std::vector<Attempt>{{"a client's certificate", "ca", "ops",
                             grpc::StatusCode::PERMISSION_DENIED},
                            {"another member's certificate", "ca", other,
                             grpc::StatusCode::PERMISSION_DENIED},
                            {"another CA's certificate", "ca", "rogue",
                             grpc::StatusCode::UNAVAILABLE}}) {
    peer::Hello hello = HelloAs(as, leader);
    const grpc::Status s = Speak(leader, creds(a.ca, a.cert), hello);
    EXPECT_EQ(s.error_code(), a.code) << a.what << ": " << s.error_message();
    // Nothing about the cluster in the answer.
    EXPECT_EQ(s.error_message().find("proc"), std::string::npos) << a.what;
    EXPECT_EQ(s.error_message().find(leader), std::string::npos) << a.what;
    // A forged leader's append would have moved terms: it never gets in.
    raft::MessageBatch batch;
    raft::Message m =
        Msg(raft::MESSAGE_TYPE_APPEND, node::MemberId(as),
            node::MemberId(leader), static_cast<uint64_t>(terms[leader]) + 1);
    *batch.add_messages() = m;
    EXPECT_FALSE(Speak(leader, creds(a.ca, a.cert), hello, batch).ok());
  }
  const std::string log = ReadAll(Log(leader));
  EXPECT_NE(log.find("certificate does not name member '" + as + "'"),
            std::string::npos)
      << log;
  // The cluster still commits, and nobody's term moved.
  const Ctl put =
      Quoratectl({"--endpoints=" + Endpoints(), "--tls_ca=" + root_ + "/ca.pem",
                  "--tls_cert=" + root_ + "/ops.pem",
                  "--tls_key=" + root_ + "/ops.key", "put", "k", "v"});
  EXPECT_EQ(put.exit, 0) << put.out;
  for (const auto& [name, m] : members_) {
    EXPECT_EQ(Term(name), terms[name]) << name;
  }
  EXPECT_EQ(AgreedLeader(), leader);
}

TEST_F(HostilePeerTest, MismatchedElectionTimeout_IsRefused) {
  Define(3);
  members_["n3"].extra_flags = {"--election_timeout=300ms"};
  for (auto& [name, m] : members_) Start(name);
  // n1 and n2 agree and form the cluster; n3 is refused by both, and says
  // why in their logs.
  EXPECT_TRUE(Await([&] {
    const std::string n1 = ReadAll(Log("n1"));
    return n1.find("claiming to be member 'n3'") != std::string::npos &&
           n1.find("its election timeout is 300 ms") != std::string::npos;
  }));
  EXPECT_TRUE(Await([&] {
    const std::string s = Status("n1");
    const std::string l = JsonString(s, "leader_id");
    return l == "n1" || l == "n2";
  }));
  // A Hello with n3's settings is refused, one with the cluster's accepted.
  peer::Hello hello = HelloAs("n3", "n1");
  hello.set_election_timeout_ms(300);
  EXPECT_EQ(Speak("n1", grpc::InsecureChannelCredentials(), hello).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  hello.set_election_timeout_ms(200);
  EXPECT_TRUE(Speak("n1", grpc::InsecureChannelCredentials(), hello).ok());
}

// Versions on the wire: a member whose peer-protocol range does not meet
// this release's is refused, and the refusing member says why; an older
// member that names no range (protocol 1) and a newer one that still
// speaks this release's protocol are accepted.
TEST_F(HostilePeerTest, PeerProtocolRanges_ThatDoNotOverlapAreRefused) {
  Define(3);
  for (auto& [name, m] : members_) Start(name);
  ASSERT_FALSE(AwaitLeader().empty());
  auto creds = grpc::InsecureChannelCredentials();
  peer::Hello hello = HelloAs("n3", "n1");
  // From before versions were exchanged: no version, no range.
  EXPECT_TRUE(Speak("n1", creds, hello).ok());
  // A newer release that still speaks ours.
  hello.set_version("9.0.0");
  hello.set_protocol(transport::kPeerProtocol + 5);
  hello.set_min_protocol(transport::kPeerProtocol);
  EXPECT_TRUE(Speak("n1", creds, hello).ok());
  // One that speaks only newer protocols.
  hello.set_min_protocol(transport::kPeerProtocol + 1);
  EXPECT_EQ(Speak("n1", creds, hello).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Await([&] {
    return ReadAll(Log("n1")).find(
               absl::StrCat("it runs release 9.0.0 speaking peer protocols ",
                            transport::kPeerProtocol + 1, " to ",
                            transport::kPeerProtocol + 5)) != std::string::npos;
  }));
  // The members' own Hellos name their release: /status shows it.
  const std::string s = Status("n1");
  EXPECT_NE(s.find(absl::StrCat("\"version\": \"", Version(), "\"")),
            std::string::npos)
      << s;
}

// The peak resident memory of process `pid` (VmHWM), in KiB; -1 if unknown.
int64_t PeakRssKib(pid_t pid) {
  const std::string status = ReadAll(absl::StrCat("/proc/", pid, "/status"));
  const size_t at = status.find("VmHWM:");
  int64_t kib = -1;
  if (at == std::string::npos) return kib;
  const size_t from = status.find_first_of("0123456789", at);
  (void)absl::SimpleAtoi(
      status.substr(from, status.find_first_not_of("0123456789", from) - from),
      &kib);
  return kib;
}

// A 300 MB request is refused before it is buffered: gRPC 1.51 checks a
// message's length only once it has read it, so what bounds the buffering
// is the listener's memory quota (transport Options::resource_quota_bytes,
// 64 MiB): past it the stream is reset. The member's peak memory grows by
// about the quota, not by 300 MB, and it keeps serving.
TEST_F(HostilePeerTest, HugeClientRequest_IsRefusedBeforeItIsBuffered) {
  Define(1);
  Start("n1");
  ASSERT_EQ(AwaitLeader(), "n1");
  const pid_t pid = members_["n1"].process->pid();
  const int64_t before = PeakRssKib(pid);
  ASSERT_GT(before, 0);
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(-1);  // this client sends what it likes
  auto channel = grpc::CreateCustomChannel(
      members_["n1"].port->address(), grpc::InsecureChannelCredentials(), args);
  auto stub = client::Kv::NewStub(channel);
  client::PutRequest req;
  req.set_key("huge");
  req.mutable_value()->assign(300u << 20, 'x');
  client::PutResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  const grpc::Status s = stub->Put(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << s.error_message();
  const int64_t after = PeakRssKib(pid);
  std::cout << "quorate-node peak RSS before " << before / 1024
            << " MiB, after " << after / 1024
            << " MiB (a 300 MiB request refused)\n";
  const auto quota_kib = static_cast<int64_t>(
      transport::Transport::Options().resource_quota_bytes / 1024);
  // The quota, and as much again for gRPC's and the allocator's own
  // (ASan keeps freed memory in quarantine): far below 300 MB. Under
  // ThreadSanitizer every page the program touches has shadow pages too,
  // which count in the peak: it measured 135 MiB of growth there once,
  // and buffering the 300 MB would still show as several times more.
  const int64_t allowance = kThreadSanitizer ? 3 : 2;
  EXPECT_LT(after - before, allowance * quota_kib)
      << "peak RSS grew by " << (after - before) / 1024 << " MiB";
  // Still serving.
  const Ctl put = Quoratectl({"--endpoints=" + Endpoints(), "put", "k", "v"});
  EXPECT_EQ(put.exit, 0) << put.out;
}

}  // namespace
}  // namespace quorate
