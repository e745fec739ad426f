// etcd's own command-line client, Debian's etcdctl 3.4, against a
// 3-member Quorate cluster serving etcd's v3 API (api/etcd_gateway.h),
// and the same commands, in the same test, against a 3-member etcd 3.4
// cluster: the expected output is what etcd itself prints. Each step
// compares etcdctl's output and exit code, after masking what differs by
// nature (member and lease ids, addresses, durations).
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "bench/clusters.h"
#include "util/process.h"

namespace quorate {
namespace {

using bench::Cluster;
using bench::EtcdCluster;
using bench::QuorateCluster;
using testing::Process;
using testing::ReadAll;

constexpr char kEtcdctl[] = "/usr/bin/etcdctl";

// What one etcdctl run printed (standard output, then error) and its exit
// code.
struct Printed {
  std::string text;
  int code = -1;
  bool operator==(const Printed&) const = default;
};

std::string Shell(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// One side of the comparison: a cluster and the directory its etcdctl
// runs write into.
class Side {
 public:
  Side(std::unique_ptr<Cluster> cluster, std::string dir)
      : cluster_(std::move(cluster)), dir_(std::move(dir)) {
    for (int i = 0; i < bench::kMembers; ++i) cluster_->Start(i);
    EXPECT_TRUE(bench::Await([&] { return cluster_->Leader() >= 0; }))
        << cluster_->name() << " elected no leader";
  }
  Cluster& cluster() { return *cluster_; }
  std::string name() const { return cluster_->name(); }

  std::string Endpoints() const {
    std::vector<std::string> e;
    for (int i = 0; i < bench::kMembers; ++i) {
      e.push_back(cluster_->ClientAddress(i));
    }
    return absl::StrJoin(e, ",");
  }

  // The command line of an etcdctl run with `args` (and `input` on its
  // standard input), its output into `out`.
  std::vector<std::string> Command(const std::vector<std::string>& args,
                                   const std::string& input,
                                   const std::string& out) {
    // exec: a signal to the process reaches etcdctl itself.
    std::string line =
        absl::StrCat("exec ", kEtcdctl, " --endpoints=", Endpoints(),
                     " --dial-timeout=5s --command-timeout=10s");
    for (const std::string& a : args) absl::StrAppend(&line, " ", Shell(a));
    const std::string in = absl::StrCat(out, ".in");
    std::ofstream(in) << input;
    absl::StrAppend(&line, " <", in, " >", out, " 2>", out, ".err");
    return {"/bin/sh", "-c", line};
  }

  // Runs etcdctl to the end.
  Printed Run(const std::vector<std::string>& args,
              const std::string& input = "") {
    const std::string out = absl::StrCat(dir_, "/run", ++runs_);
    Process p(Command(args, input, out), out + ".log");
    std::optional<int> code = p.Wait(absl::Seconds(60));
    EXPECT_TRUE(code.has_value()) << "etcdctl " << absl::StrJoin(args, " ")
                                  << " ran for a minute against " << name();
    return Printed{ReadAll(out) + ReadAll(out + ".err"), code.value_or(-1)};
  }

  // Starts etcdctl in the background; Output() reads what it printed so
  // far.
  struct Background {
    std::unique_ptr<Process> process;
    std::string out;
  };
  Background Start(const std::vector<std::string>& args) {
    const std::string out = absl::StrCat(dir_, "/bg", ++runs_);
    auto p = std::make_unique<Process>(Command(args, "", out), out + ".log");
    return Background{std::move(p), out};
  }

 private:
  std::unique_ptr<Cluster> cluster_;
  const std::string dir_;
  int runs_ = 0;
};

// Masks what differs between two clusters by nature.
std::string Mask(std::string s) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      // etcdctl's own log lines: their time and client id.
      {std::regex(R"re("ts":"[^"]*")re"), "\"ts\":<TS>"},
      {std::regex(R"(client-[0-9a-f-]+)"), "client-<UUID>"},
      // Durations ("took = 3.7ms").
      {std::regex(R"(took = [0-9.]+[µmn]?s)"), "took = <T>"},
      // A lease's remaining seconds (a second may pass between the two).
      {std::regex(R"(remaining\(-?\d+s\))"), "remaining(<S>)"},
      // Addresses.
      {std::regex(R"(127\.0\.0\.1:\d+)"), "<ADDR>"},
      // Member and lease ids (etcd's are random, 16 hex digits; ours are
      // hashes of names, and small lease numbers), also inside lock and
      // election keys ("NAME/HEX").
      {std::regex(R"(\b[0-9a-f]{16}\b)"), "<ID>"},
      {std::regex(R"(\b[0-9a-f]{13,15}\b)"), "<ID>"},
      {std::regex(R"(((?:^|\n)[A-Za-z]+/)[0-9a-f]+\b)"), "$1<ID>"},
      // JSON headers' numbers that name a cluster, member or term.
      {std::regex(
           R"re("(cluster_id|member_id|raft_term|ID|leader|lease)":\d+)re"),
       "\"$1\":<N>"},
      // Member names (etcd's e0.., ours n0..).
      {std::regex(R"(, [en]\d, )"), ", <NAME>, "},
  };
  for (const auto& [re, with] : rules) s = std::regex_replace(s, re, with);
  // A lease's keys: etcd lists them in no fixed order.
  static const std::regex keys(R"(attached keys\(\[([^\]]*)\]\))");
  std::smatch m;
  if (std::regex_search(s, m, keys)) {
    std::vector<std::string> k = absl::StrSplit(m[1].str(), ' ');
    std::sort(k.begin(), k.end());
    s = std::string(m.prefix()) + "attached keys([" + absl::StrJoin(k, " ") +
        "])" + std::string(m.suffix());
  }
  return s;
}

class EtcdctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quorate-etcdctl-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(root_ + "/etcd");
    std::filesystem::create_directories(root_ + "/quorate");
    etcd_ = std::make_unique<Side>(
        std::make_unique<EtcdCluster>(bench::kEtcdBinary, root_ + "/etcd"),
        root_ + "/etcd");
    quorate_ =
        std::make_unique<Side>(std::make_unique<QuorateCluster>(
                                   QUORATE_NODE_BINARY, root_ + "/quorate"),
                               root_ + "/quorate");
  }
  void TearDown() override {
    etcd_.reset();
    quorate_.reset();
    if (!HasFailure()) std::filesystem::remove_all(root_);
  }

  // Runs `args` on both and expects the same (masked) output and exit
  // code; returns etcd's, unmasked.
  Printed Same(const std::vector<std::string>& args,
               const std::string& input = "") {
    const Printed e = etcd_->Run(args, input);
    const Printed q = quorate_->Run(args, input);
    EXPECT_EQ(Mask(q.text), Mask(e.text))
        << "etcdctl " << absl::StrJoin(args, " ") << "\n--- etcd printed:\n"
        << e.text << "\n--- Quorate printed:\n"
        << q.text;
    EXPECT_EQ(q.code, e.code) << "etcdctl " << absl::StrJoin(args, " ");
    return e;
  }

  // Both sides' background runs of `args`.
  std::pair<Side::Background, Side::Background> StartBoth(
      const std::vector<std::string>& args) {
    return {etcd_->Start(args), quorate_->Start(args)};
  }

  // Whether `side` holds `n` keys under `prefix`.
  static bool Holds(Side* side, const std::string& prefix, size_t n) {
    const Printed p = side->Run({"get", prefix, "--prefix", "--keys-only"});
    size_t keys = 0;
    for (absl::string_view line : absl::StrSplit(p.text, '\n')) {
      keys += !line.empty();
    }
    return p.code == 0 && keys == n;
  }

  // Waits until `b`'s output holds `lines` lines (up to 30 s).
  static std::string AwaitLines(const Side::Background& b, size_t lines) {
    std::string text;
    bench::Await([&] {
      text = ReadAll(b.out);
      return static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >=
             lines;
    });
    return text;
  }

  std::string root_;
  std::unique_ptr<Side> etcd_;
  std::unique_ptr<Side> quorate_;
};

TEST_F(EtcdctlTest, PutGetDeleteWithRangesLimitsSortsAndRevisions) {
  for (const auto& [k, v] : std::vector<std::pair<std::string, std::string>>{
           {"foo", "bar"}, {"foo2", "baz"}, {"fop", "x"}, {"zoo", "y"}}) {
    Same({"put", k, v});
  }
  Same({"get", "foo"});
  Same({"get", "foo", "--prefix"});
  Same({"get", "foo", "--prefix", "--limit=2"});
  Same({"get", "--from-key", "foo2"});
  Same({"get", "foo", "zoo"});
  Same({"get", "f", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"});
  Same({"get", "f", "--prefix", "--sort-by=VALUE", "--order=ASCEND"});
  Same({"get", "f", "--prefix", "--sort-by=CREATE", "--order=DESCEND",
        "--limit=2"});
  Same({"get", "foo", "--prefix", "--keys-only"});
  Same({"get", "foo", "--prefix", "--keys-only", "-w", "json"});
  Same({"get", "foo", "-w", "json"});
  Same({"get", "foo", "--rev=2"});
  Same({"put", "foo", "bar2", "--prev-kv"});
  Same({"get", "foo", "--rev=2"});
  // A past revision's header shows the current one.
  Same({"get", "foo", "--rev=3", "-w", "json"});
  Same({"get", "foo", "--rev=6", "-w", "json"});
  Same({"put", "foo", "--ignore-value"});
  Same({"get", "foo", "-w", "json"});
  Same({"put", "nokey", "--ignore-value"});
  Same({"get", "foo", "--rev=100"});
  Same({"get", "nothing"});
  Same({"del", "fop", "--prev-kv"});
  Same({"del", "foo", "--prefix"});
  Same({"del", "foo", "--prefix"});
  Same({"get", "", "--prefix"});
  Same({"get", "", "--prefix", "-w", "json"});
}

TEST_F(EtcdctlTest, InteractiveTransactions) {
  Same({"put", "a", "1"});
  Same({"put", "b", "2"});
  // Success branch; a get inside sees the put before it.
  Same({"txn", "-i"},
       "value(\"a\") = \"1\"\n\nput a 10\nget a\nget b\n\nput a 99\n\n");
  // Failure branch.
  Same({"txn", "-i"},
       "value(\"a\") = \"1\"\n\nput a 11\n\nput b 20\nget b --prefix\n\n");
  // Revisions, versions, and a compare on a missing key.
  Same({"txn", "-i"},
       "mod(\"a\") > \"0\"\nver(\"b\") = \"2\"\ncreate(\"none\") = \"0\"\n\n"
       "del b\nput c 3\n\nput fail x\n\n");
  Same({"txn", "-i", "-w", "json"}, "mod(\"c\") < \"1\"\n\nget c\n\nget a\n\n");
  Same({"txn", "-i", "-w", "json"}, "\nput x 1\ndel c\nget a\n\n\n");
  // Two writes of one key: refused.
  Same({"txn", "-i"}, "\nput d 1\nput d 2\n\n\n");
  Same({"get", "", "--prefix"});
}

TEST_F(EtcdctlTest, WatchWithPrefixRevAndPrevKvAcrossALeaderKill) {
  Same({"put", "w/a", "1"});
  const std::vector<std::string> watch = {"watch", "w/", "--prefix",
                                          "--prev-kv", "--rev=2"};
  auto [e, q] = StartBoth(watch);
  for (const std::vector<std::string>& step :
       std::vector<std::vector<std::string>>{
           {"put", "w/b", "2"}, {"put", "w/a", "3"}, {"del", "w/b"}}) {
    Same(step);
  }
  // Four events: a PUT is 3 lines (with the value before: 5), a DELETE
  // with the value before 5.
  AwaitLines(e, 16);
  AwaitLines(q, 16);
  for (Side* side : {etcd_.get(), quorate_.get()}) {
    const int leader = side->cluster().Leader();
    ASSERT_GE(leader, 0) << side->name();
    side->cluster().Kill(leader);
    ASSERT_TRUE(bench::Await([&] { return side->cluster().Leader() >= 0; }))
        << side->name() << " elected no new leader";
  }
  Same({"put", "w/c", "4"});
  Same({"del", "w/a"});
  Same({"put", "other", "5"});  // outside the prefix
  const std::string etcd_saw = AwaitLines(e, 24);
  const std::string quorate_saw = AwaitLines(q, 24);
  e.process->Signal(SIGKILL);
  q.process->Signal(SIGKILL);
  EXPECT_EQ(Mask(quorate_saw), Mask(etcd_saw)) << "etcd's watch printed:\n"
                                               << etcd_saw << "\nQuorate's:\n"
                                               << quorate_saw;
  EXPECT_TRUE(absl::StrContains(quorate_saw, "DELETE\nw/a\n"));
}

TEST_F(EtcdctlTest, LeasesGrantKeepAliveTimeToLiveRevokeAndList) {
  const Printed e = etcd_->Run({"lease", "grant", "100"});
  const Printed q = quorate_->Run({"lease", "grant", "100"});
  ASSERT_EQ(Mask(q.text), Mask(e.text));
  // "lease ID granted with TTL(100s)"
  auto id_of = [](const std::string& text) {
    std::vector<std::string> w = absl::StrSplit(text, ' ');
    return w.size() > 1 ? w[1] : "";
  };
  const std::string eid = id_of(e.text), qid = id_of(q.text);
  ASSERT_FALSE(qid.empty());
  // Each side's own lease id.
  auto both = [&](std::vector<std::string> args) {
    std::vector<std::string> ea = args, qa = args;
    for (std::string& a : ea) a = absl::StrReplaceAll(a, {{"ID", eid}});
    for (std::string& a : qa) a = absl::StrReplaceAll(a, {{"ID", qid}});
    const Printed ep = etcd_->Run(ea);
    const Printed qp = quorate_->Run(qa);
    EXPECT_EQ(Mask(qp.text), Mask(ep.text))
        << absl::StrJoin(args, " ") << "\netcd: " << ep.text
        << "\nQuorate: " << qp.text;
    EXPECT_EQ(qp.code, ep.code) << absl::StrJoin(args, " ");
    return qp;
  };
  both({"put", "lk", "v", "--lease=ID"});
  both({"put", "lk2", "v", "--lease=ID"});
  both({"lease", "timetolive", "ID", "--keys"});
  both({"lease", "list"});
  both({"lease", "keep-alive", "--once", "ID"});
  both({"get", "lk", "-w", "json"});
  both({"lease", "revoke", "ID"});
  both({"lease", "timetolive", "ID"});
  both({"get", "lk", "--prefix"});
  both({"lease", "revoke", "ID"});
  both({"lease", "list"});
  both({"put", "lk", "v", "--lease=ID"});
}

TEST_F(EtcdctlTest, LockAndElectWithTwoContendersAndAHolderKilled) {
  // A holds the lock; B waits; A dies; B gets it once A's session (2 s)
  // ends.
  auto [ea, qa] = StartBoth({"lock", "L", "--ttl=2"});
  AwaitLines(ea, 1);
  AwaitLines(qa, 1);
  auto [eb, qb] = StartBoth({"lock", "L", "--ttl=2"});
  // B has entered (its key is there) and waits: it printed nothing.
  for (Side* side : {etcd_.get(), quorate_.get()}) {
    ASSERT_TRUE(bench::Await([&] { return Holds(side, "L/", 2); }))
        << side->name();
  }
  EXPECT_EQ(ReadAll(qb.out), "");
  EXPECT_EQ(ReadAll(eb.out), "");
  ea.process->Signal(SIGKILL);
  qa.process->Signal(SIGKILL);
  const std::string etcd_b = AwaitLines(eb, 1);
  const std::string quorate_b = AwaitLines(qb, 1);
  EXPECT_EQ(Mask(quorate_b), Mask(etcd_b));
  EXPECT_TRUE(absl::StartsWith(quorate_b, "L/")) << quorate_b;
  EXPECT_NE(ReadAll(qa.out), quorate_b);  // another key: B's own
  eb.process->Signal(SIGKILL);
  qb.process->Signal(SIGKILL);

  // Elections: an observer sees p1, then p2 after p1's campaigner is
  // interrupted (etcdctl elect has no --ttl: its session lasts 60 s, so
  // it resigns on SIGINT rather than dies).
  auto [eo, qo] = StartBoth({"elect", "-l", "E"});
  auto [e1, q1] = StartBoth({"elect", "E", "p1"});
  AwaitLines(e1, 2);
  AwaitLines(q1, 2);
  auto [e2, q2] = StartBoth({"elect", "E", "p2"});
  for (Side* side : {etcd_.get(), quorate_.get()}) {
    ASSERT_TRUE(bench::Await([&] { return Holds(side, "E/", 2); }))
        << side->name();
  }
  EXPECT_EQ(ReadAll(q2.out), "");
  e1.process->Signal(SIGINT);
  q1.process->Signal(SIGINT);
  const std::string etcd_2 = AwaitLines(e2, 2);
  const std::string quorate_2 = AwaitLines(q2, 2);
  EXPECT_EQ(Mask(quorate_2), Mask(etcd_2));
  EXPECT_TRUE(absl::StrContains(quorate_2, "\np2\n")) << quorate_2;
  const std::string etcd_o = AwaitLines(eo, 4);
  const std::string quorate_o = AwaitLines(qo, 4);
  EXPECT_EQ(Mask(quorate_o), Mask(etcd_o));
  EXPECT_TRUE(absl::StrContains(quorate_o, "\np1\n")) << quorate_o;
  EXPECT_TRUE(absl::StrContains(quorate_o, "\np2\n")) << quorate_o;
  for (auto* b : {&eo, &qo, &e2, &q2}) b->process->Signal(SIGKILL);
}

TEST_F(EtcdctlTest, MembersEndpointsAndCompaction) {
  Same({"member", "list"});
  Same({"endpoint", "health"});
  // Status differs by nature in ids, versions, sizes and indexes: one
  // line per endpoint, exactly one leader, no learner.
  for (Side* side : {etcd_.get(), quorate_.get()}) {
    const Printed p = side->Run({"endpoint", "status"});
    EXPECT_EQ(p.code, 0) << side->name() << ": " << p.text;
    std::vector<std::string> lines =
        absl::StrSplit(absl::StripTrailingAsciiWhitespace(p.text), '\n');
    ASSERT_EQ(lines.size(), 3u) << side->name() << ": " << p.text;
    int leaders = 0;
    for (const std::string& l : lines) {
      std::vector<std::string> f = absl::StrSplit(l, ", ");
      ASSERT_GE(f.size(), 9u) << l;
      leaders += f[4] == "true";
      EXPECT_EQ(f[5], "false") << l;
    }
    EXPECT_EQ(leaders, 1) << side->name() << ": " << p.text;
  }
  for (int i = 1; i <= 4; ++i) Same({"put", "c", absl::StrCat(i)});
  Same({"compaction", "4"});
  Same({"get", "c", "--rev=3"});
  Same({"get", "c", "--rev=4"});
  Same({"compaction", "3"});
  Same({"compaction", "100"});
  Same({"watch", "c", "--rev=3"});
}

// The npm etcd3 library (tests/etcd3/: the version pinned, its
// dependencies locked), installed from the npm registry, runs the same
// script against both clusters.
TEST_F(EtcdctlTest, TheEtcd3NodeLibraryGetsTheSameResults) {
  const std::string dir = root_ + "/etcd3";
  std::filesystem::create_directories(dir);
  for (const char* f : {"package.json", "package-lock.json", "client.js"}) {
    std::filesystem::copy_file(
        absl::StrCat(QUORATE_SOURCE_DIR, "/tests/etcd3/", f),
        absl::StrCat(dir, "/", f));
  }
  {
    Process npm(
        {"/bin/sh", "-c",
         absl::StrCat("cd ", dir, " && exec npm ci --no-audit --no-fund")},
        dir + "/npm.log");
    ASSERT_EQ(npm.Wait(absl::Minutes(5)), 0) << "npm ci failed:\n"
                                             << ReadAll(dir + "/npm.log");
  }
  auto run = [&](Side* side) {
    const std::string log = absl::StrCat(dir, "/", side->name(), ".out");
    Process node({"/usr/bin/node", dir + "/client.js", side->Endpoints()}, log);
    EXPECT_EQ(node.Wait(absl::Minutes(2)), 0) << side->name() << ":\n"
                                              << ReadAll(log);
    return ReadAll(log);
  };
  const std::string etcd = run(etcd_.get());
  const std::string quorate = run(quorate_.get());
  EXPECT_EQ(quorate, etcd);
  EXPECT_TRUE(absl::StrContains(quorate, "event delete w/x")) << quorate;
}

}  // namespace
}  // namespace quorate
