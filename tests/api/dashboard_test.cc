// What the dashboard's timeline reports between two readings, and the
// document /ui/state serves (api/dashboard.h).
#include "api/dashboard.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace quorate::api {
namespace {

DashboardSnapshot Base() {
  DashboardSnapshot s;
  ClusterMember n1;
  n1.id = "n1";
  n1.zone = "az-a";
  n1.role = "leader";
  n1.term = 3;
  n1.mode = "active";
  ClusterMember n2 = n1;
  n2.id = "n2";
  n2.zone = "az-c";
  n2.role = "follower";
  s.members = {n1, n2};
  DashboardSnapshot::Group g;
  g.name = "mailboxes";
  for (uint32_t i = 0; i < 2; ++i) {
    ShardInfo sh;
    sh.shard = i;
    sh.owner = 0xa;
    sh.epoch = 1;
    sh.state = "owned";
    g.shards.push_back(sh);
  }
  s.groups = {g};
  s.sessions = {{0xa, 1000, 4000, 2}, {0xb, 1000, 4000, 1}};
  s.workloads = {{"outbound-email", true, ""}};
  s.cards = {
      {"quorate/dashboard/email/p1", "{\"name\": \"p1\", \"lease\": \"a\"}"},
      {"quorate/dashboard/email/p2", "{\"name\": \"p2\", \"lease\": \"b\"}"}};
  return s;
}

std::vector<std::string> Texts(const std::vector<TimelineEvent>& events) {
  std::vector<std::string> out;
  for (const TimelineEvent& e : events) out.push_back(e.kind + ": " + e.text);
  return out;
}

TEST(DashboardTest, NothingChangedNothingReported) {
  EXPECT_TRUE(DashboardDiff(Base(), Base(), 1).empty());
}

TEST(DashboardTest, ReportsElectionsPausesMovesSwitchesAndSessions) {
  DashboardSnapshot before = Base();
  DashboardSnapshot after = Base();
  after.members[0].role = "follower";
  after.members[1].role = "leader";
  after.members[1].term = 4;
  after.members[0].mode = "paused";
  after.groups[0].shards[1].owner = 0xb;
  after.groups[0].shards[1].epoch = 2;
  after.workloads[0] = {"outbound-email", false, "flood"};
  after.sessions.erase(after.sessions.begin());
  EXPECT_EQ(Texts(DashboardDiff(before, after, 7)),
            (std::vector<std::string>{
                "election: n2 leads in term 4",
                "mode: n1 (az-a) paused: it lost contact with its quorum",
                "shard: mailboxes/1: p1 -> p2 (epoch 2)",
                "workload: outbound-email paused: flood",
                "session: session p1 ended"}));
  // And back.
  EXPECT_EQ(Texts(DashboardDiff(after, before, 8))[1],
            "mode: n1 (az-a) active again");
}

TEST(DashboardTest, TheDocumentEscapesWhatItQuotes) {
  DashboardSnapshot s = Base();
  s.workloads[0].reason = "a \"quoted\"\nreason";
  std::deque<TimelineEvent> timeline = {{5, "start", "n1 began"}};
  const std::string json = DashboardJson(s, timeline, "n1", "demo", 9);
  EXPECT_NE(json.find("\"reason\": \"a \\\"quoted\\\"\\nreason\""),
            std::string::npos)
      << json;
  EXPECT_NE(json.find("\"owner\": \"a\""), std::string::npos);
  EXPECT_NE(json.find("\"value\": \"{\\\"name\\\": \\\"p1\\\""),
            std::string::npos);
  EXPECT_NE(json.find("\"timeline\": [{\"t_ms\": 5"), std::string::npos);
  EXPECT_EQ(json.back(), '\n');
}

}  // namespace
}  // namespace quorate::api
