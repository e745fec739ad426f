// Unit tests of the chaos harness's parts that need no root: schedules,
// the event-log reader and the checkers (shown to fail as well as pass).
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "chaos/check.h"
#include "chaos/schedule.h"
#include "gtest/gtest.h"

namespace quorate::chaos {
namespace {

TEST(Schedule, ParsesSettingsAndSteps) {
  absl::StatusOr<Schedule> s = ParseSchedule(
      "# comment\nmembers 3\nzones a b c\nclients 2\nkeys 7\nrate 10\n"
      "settle 1s\nisolate leader 5s  # trailing\npartition n1|n2,n3 2s\n"
      "skew n2 1.5 3s\nquiet 500ms\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->members, 3);
  EXPECT_EQ(s->zones, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(s->clients, 2);
  EXPECT_EQ(s->keys, 7);
  EXPECT_EQ(s->rate, 10);
  ASSERT_EQ(s->steps.size(), 4u);
  EXPECT_EQ(s->steps[0].Describe(), "isolate leader 5s");
  EXPECT_EQ(s->steps[1].args, (std::vector<std::string>{"n1|n2,n3"}));
  EXPECT_EQ(s->steps[2].args, (std::vector<std::string>{"n2", "1.5"}));
  EXPECT_EQ(s->Length(), absl::Milliseconds(11500));
  // What it prints parses back to the same schedule.
  absl::StatusOr<Schedule> again = ParseSchedule(s->Describe());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Describe(), s->Describe());
}

TEST(Schedule, TheLargestSkewSetsTheDriftMembersAreTold) {
  absl::StatusOr<Schedule> s =
      ParseSchedule("skew n1 1.3 2s\nquiet 1s\nskew n2 0.8 2s\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_NEAR(s->MaxSkew(), 0.3, 1e-9);
  EXPECT_EQ(ParseSchedule("kill n1 2s\n")->MaxSkew(), 0);
  // Random schedules skew only within what a member can be told.
  EXPECT_LT(RandomSchedule(3, absl::Minutes(10)).MaxSkew(), 0.49);
}

TEST(Schedule, DefaultZonesRoundRobin) {
  absl::StatusOr<Schedule> s = ParseSchedule("members 4\n");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->zones,
            (std::vector<std::string>{"az-a", "az-b", "az-c", "az-a"}));
}

TEST(Schedule, ErrorsNameTheLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"members 5\nexplode n1 3s\n",
       "line 2: unknown setting or nemesis 'explode'"},
      {"kill n1\n", "line 1: 'kill' takes 1 argument(s) and a duration"},
      {"kill n1 soon\n", "line 1: 'soon' is not a duration"},
      {"loss 140 2s\n", "line 1: '140' is not a valid amount for 'loss'"},
      {"skew n1 0 2s\n", "line 1: '0' is not a valid amount for 'skew'"},
      {"members 0\n", "line 1: 'members' takes a whole number"},
      {"members 3\nzones a b\n", "'zones' names 2 zones for 3 members"},
  };
  for (const auto& [text, want] : cases) {
    absl::StatusOr<Schedule> s = ParseSchedule(text);
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_NE(s.status().message().find(want), std::string::npos)
        << s.status().message();
  }
}

TEST(Schedule, PlacesServicesInZonesWithStepsOfTheirOwn) {
  absl::StatusOr<Schedule> s = ParseSchedule(
      "members 3\nzones az-a az-b az-c\nclients 0\n"
      "set db postgresql://x@{address:db}/y\n"
      "service db * /usr/bin/postgres -h {address}\n"
      "ready db 30s pg_isready -h {address:db}\n"
      "service worker az-c /bin/worker --db={db}\n"
      "service load - /bin/load\n"
      "isolate-zone az-c 5s\n"
      "stop load\n"
      "await 1m /bin/audit --drained\n"
      "mark done\n"
      "run touch {out_dir}/x\n"
      "check /bin/audit --db={db}\n");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->clients, 0);
  ASSERT_EQ(s->services.size(), 3u);
  EXPECT_EQ(s->services[0].zone, "*");
  EXPECT_EQ(s->services[0].ready_within, absl::Seconds(30));
  EXPECT_FALSE(s->services[2].netns());  // zone -: the harness's namespace
  ASSERT_EQ(s->steps.size(), 5u);
  EXPECT_FALSE(s->steps[0].Action());
  EXPECT_TRUE(s->steps[1].Action());
  EXPECT_EQ(s->steps[2].Describe(), "await 1m /bin/audit --drained");
  EXPECT_EQ(s->steps[3].duration, absl::ZeroDuration());
  EXPECT_EQ(s->checks.size(), 1u);
  EXPECT_TRUE(s->CutsLinks());
  // The description reads back as the same schedule.
  absl::StatusOr<Schedule> again = ParseSchedule(s->Describe());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Describe(), s->Describe());
}

TEST(Schedule, ServiceErrorsSayWhatIsWrong) {
  auto error = [](const std::string& text) {
    absl::StatusOr<Schedule> s =
        ParseSchedule("members 3\nzones az-a az-b az-c\n" + text);
    return s.ok() ? std::string("ok") : std::string(s.status().message());
  };
  EXPECT_NE(error("service w az-x /bin/w\n").find("no member"),
            std::string::npos);
  EXPECT_NE(error("service w az-a /bin/w\nservice w az-b /bin/w\n")
                .find("a second service"),
            std::string::npos);
  EXPECT_NE(error("ready nobody 5s /bin/true\n").find("a service named"),
            std::string::npos);
  EXPECT_NE(error("stop nobody\n").find("no service 'nobody'"),
            std::string::npos);
  EXPECT_NE(error("await soon /bin/true\n").find("timeout"), std::string::npos);
  EXPECT_FALSE(ParseSchedule("members 3\nkill n1 2s\n")->CutsLinks());
}

TEST(Schedule, RandomIsReproducibleAndLongEnough) {
  const Schedule a = RandomSchedule(7, absl::Seconds(60));
  EXPECT_EQ(a.Describe(), RandomSchedule(7, absl::Seconds(60)).Describe());
  EXPECT_NE(a.Describe(), RandomSchedule(8, absl::Seconds(60)).Describe());
  EXPECT_GE(a.Length(), absl::Seconds(60));
  // Every random schedule is one a file could hold.
  EXPECT_TRUE(ParseSchedule(a.Describe()).ok());
}

Op Write(const std::string& key, const std::string& v, int64_t call,
         int64_t ret, Op::Outcome outcome = Op::Outcome::kOk) {
  Op op;
  op.type = Op::Type::kWrite;
  op.key = key;
  op.value = v;
  op.call_ns = call;
  op.return_ns = ret;
  op.outcome = outcome;
  return op;
}

Op Read(const std::string& key, const std::string& v, int64_t call,
        int64_t ret) {
  Op op = Write(key, v, call, ret);
  op.type = Op::Type::kRead;
  return op;
}

TEST(Checkers, LinearizabilityCatchesAStaleRead) {
  std::vector<Op> h = {Write("r/0", "a", 0, 10), Write("r/0", "b", 20, 30),
                       Read("r/0", "b", 40, 50)};
  EXPECT_TRUE(CheckLinearizability(h).ok);
  h.push_back(Read("r/0", "a", 60, 70));  // after b was read: stale
  const Verdict v = CheckLinearizability(h);
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.detail.find("'r/0'"), std::string::npos) << v.detail;
}

TEST(Checkers, AWriteOfUnknownOutcomeMayHaveHappened) {
  std::vector<Op> h = {Write("r/0", "a", 0, 10),
                       Write("r/0", "b", 20, 0, Op::Outcome::kUnknown),
                       Read("r/0", "b", 100, 110), Read("r/0", "b", 120, 130)};
  EXPECT_TRUE(CheckLinearizability(h).ok);
  // A refused write never happened: reading its value is a violation.
  h[1].outcome = Op::Outcome::kFailed;
  EXPECT_FALSE(CheckLinearizability(h).ok);
}

TEST(Checkers, LostWritesAreReported) {
  Op put = Write("u/0/1", "c0-1", 0, 10);
  put.type = Op::Type::kPutOnce;
  Op final_read = Read("u/0/1", "c0-1", 100, 110);
  final_read.client = -1;
  EXPECT_TRUE(CheckNoLostWrites({put, final_read}).ok);
  final_read.value = "";  // read back as absent
  const Verdict v = CheckNoLostWrites({put, final_read});
  EXPECT_FALSE(v.ok);
  EXPECT_NE(v.detail.find("u/0/1"), std::string::npos) << v.detail;
  EXPECT_FALSE(CheckNoLostWrites({put}).ok);  // never read back
}

std::string WriteLog(const std::string& lines) {
  char path[] = "/tmp/quorate-chaos-test-XXXXXX";
  const int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << lines;
  return path;
}

TEST(Checkers, EventLogFromTheContract) {
  const std::string path = WriteLog(
      R"({"t_mono_ns": 100, "id": "n1", "event": "role", "role": "leader", "term": 7}
{"t_mono_ns": 200, "id": "n1", "event": "mode", "mode": "active", "term": 7, "leader_id": "n1"}
{"t_mono_ns": 900, "id": "n1", "event": "mode", "mode": "paused", "term": 7, "active_until_mono_ns": 870, "reason": "no quorum contact for 612ms"}
{"t_mono_ns": 950, "id": "n2", "event": "role", "role": "leader", "term": 8}
)");
  absl::StatusOr<std::vector<Event>> events = ReadEventLog(path);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 4u);
  EXPECT_EQ((*events)[2].active_until_ns, 870);
  EXPECT_EQ((*events)[2].reason, "no quorum contact for 612ms");
  for (const Verdict& v : CheckEvents(*events, 2000)) {
    EXPECT_TRUE(v.ok) << v.name << ": " << v.detail;
  }
  // The window really lasted until 960: term 8's leader at 950 overlaps.
  (*events)[2].active_until_ns = 960;
  EXPECT_FALSE(CheckEvents(*events, 2000)[1].ok);
  // A window never closed overlaps every later leader...
  events->erase(events->begin() + 2);
  EXPECT_FALSE(CheckEvents(*events, 2000)[1].ok);
  // ...unless its process was killed before that leader came.
  EXPECT_TRUE(CheckEvents(*events, 2000, {{"n1", {940}}})[1].ok);
  EXPECT_FALSE(CheckEvents(*events, 2000, {{"n1", {960}}})[1].ok);
  // Two leaders in one term.
  (*events)[2].term = 7;
  EXPECT_FALSE(CheckEvents(*events, 2000)[0].ok);
  std::remove(path.c_str());
}

TEST(Checkers, AnUnreadableEventLogLineIsAnError) {
  const std::string path = WriteLog("{\"id\": \"n1\", \"event\": \"role\"}\n");
  absl::StatusOr<std::vector<Event>> events = ReadEventLog(path);
  ASSERT_FALSE(events.ok());
  EXPECT_NE(events.status().message().find(":1:"), std::string::npos)
      << events.status().message();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace quorate::chaos
