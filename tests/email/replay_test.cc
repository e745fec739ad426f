// The incident replays' analysis (lib/replay.h) on made-up runs: a clean
// run passes with the right numbers, and each check fails on the run that
// breaks it (a check that cannot fail proves nothing).
#include "lib/replay.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quorate_email {
namespace {

constexpr int64_t kS = 1'000'000'000;  // a second in nanoseconds

Fields Ev(int64_t t, const std::string& who, const std::string& event,
          Fields extra = {}) {
  extra["t_mono_ns"] = absl::StrCat(t);
  extra["who"] = who;
  extra["event"] = event;
  return extra;
}

bool Has(const ReplayResult& r, const std::string& what) {
  for (const std::string& v : r.violations) {
    if (v.find(what) != std::string::npos) return true;
  }
  return false;
}

std::string Value(const ReplayResult& r, const std::string& name) {
  const std::string key = name + "=";
  size_t at = r.text.find("\n" + key);
  if (at == std::string::npos) return "";
  at += key.size() + 1;
  return r.text.substr(at, r.text.find('\n', at) - at);
}

TEST(ReplayJsonTest, ReadsTopLevelMembersAndSkipsNestedOnes) {
  absl::StatusOr<Fields> f = ParseJsonObject(
      R"({"a": 1, "b": "x\"y\u00e9", "c": {"d": [1, {"e": "}"}]}, "f": true})");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)["a"], "1");
  EXPECT_EQ((*f)["b"], "x\"y\xc3\xa9");
  EXPECT_EQ(f->count("c"), 0u);
  EXPECT_EQ((*f)["f"], "true");
  EXPECT_FALSE(ParseJsonObject(R"({"a": 1)").ok());
  EXPECT_FALSE(ParseJsonObject(R"([1])").ok());
}

// A zone cut at 10 s for 60 s: p-a (az-a) owns shard 0 throughout; p-c
// (az-c) owns shard 1 until its session lapses, and p-b (az-b) takes it.
ReplayInput ZoneCut() {
  ReplayInput in;
  in.kind = "zone-cut";
  in.steps = {{"quiet 10s", 0, 10 * kS},
              {"partition-zone az-c 1m0s", 10 * kS, 70 * kS},
              {"quiet 30s", 70 * kS, 100 * kS}};
  in.events = {Ev(0, "p-a", "start", {{"zone", "az-a"}}),
               Ev(0, "p-b", "start", {{"zone", "az-b"}}),
               Ev(0, "p-c", "start", {{"zone", "az-c"}}),
               Ev(1 * kS, "p-a", "assigned", {{"shard", "0"}}),
               Ev(1 * kS, "p-c", "assigned", {{"shard", "1"}}),
               Ev(12 * kS, "p-c", "jeopardy"),
               Ev(15 * kS, "p-c", "expired"),
               Ev(15 * kS, "p-c", "lost"),
               Ev(17 * kS, "p-b", "assigned", {{"shard", "1"}}),
               Ev(72 * kS, "p-c", "assigned", {{"shard", "2"}})};
  in.processed = {
      {"m1", 0, 5 * kS, 5 * kS + kS / 10, "p-a"},
      {"m2", 0, 20 * kS, 20 * kS + kS / 5, "p-a"},  // waits 200 ms
      {"m3", 1, 11 * kS, 17 * kS + kS / 2, "p-b"},  // orphaned: 6.5 s
      {"m4", 1, 11 * kS - kS / 2, 11 * kS, "p-c"},  // p-c's last, at +1 s
      {"m5", 0, 69 * kS, 74 * kS, "p-a"},           // drained 4 s after
      {"m6", 0, 80 * kS, 80 * kS + kS / 4, "p-a"},  // after: 250 ms
  };
  in.audit.accepted = 6;
  in.audit.processed_once = 6;
  return in;
}

TEST(ReplayTest, ZoneCut_MeasuresTheCut) {
  const ReplayResult r = AnalyzeReplay(ZoneCut());
  EXPECT_TRUE(r.ok()) << r.text;
  EXPECT_EQ(Value(r, "majority_longest_wait_ms"), "5000");
  EXPECT_EQ(Value(r, "majority_longest_wait_before_cut_ms"), "100");
  EXPECT_EQ(Value(r, "majority_longest_wait_after_heal_ms"), "250");
  EXPECT_EQ(Value(r, "minority_stopped_ms"), "2000");
  EXPECT_EQ(Value(r, "minority_sessions_lapsed_ms"), "5000");
  EXPECT_EQ(Value(r, "minority_last_processed_ms"), "1000");
  EXPECT_EQ(Value(r, "orphaned_shards"), "1");
  EXPECT_EQ(Value(r, "takeover_ms"), "7000");
  EXPECT_EQ(Value(r, "orphaned_longest_wait_ms"), "6500");
  EXPECT_EQ(Value(r, "minority_owns_again_after_heal_ms"), "2000");
  EXPECT_EQ(Value(r, "backlog_drained_after_heal_ms"), "4000");
  EXPECT_NE(r.html.find("<svg"), std::string::npos);
  EXPECT_NE(r.json.find("\"takeover_ms\": 7000"), std::string::npos);
}

TEST(ReplayTest, ZoneCut_CatchesWhatGoesWrong) {
  ReplayInput twice = ZoneCut();
  twice.audit.processed_twice = 1;
  EXPECT_TRUE(Has(AnalyzeReplay(twice), "processed twice"));

  ReplayInput missing = ZoneCut();
  missing.audit.missing = 2;
  EXPECT_TRUE(Has(AnalyzeReplay(missing), "missing"));

  ReplayInput kept_working = ZoneCut();  // p-c never noticed the cut
  std::erase_if(kept_working.events,
                [](const Fields& e) { return e.at("event") == "jeopardy"; });
  EXPECT_TRUE(Has(AnalyzeReplay(kept_working), "never stopped"));

  ReplayInput orphaned = ZoneCut();  // nobody took shard 1
  std::erase_if(orphaned.events, [](const Fields& e) {
    return e.at("who") == "p-b" && e.at("event") == "assigned";
  });
  EXPECT_TRUE(Has(AnalyzeReplay(orphaned), "orphaned shard 1"));

  ReplayInput never_back = ZoneCut();
  never_back.events.pop_back();
  EXPECT_TRUE(Has(AnalyzeReplay(never_back), "never owned a shard again"));

  ReplayInput held_up = ZoneCut();  // m2 waited 40 s on p-a's shard 0
  held_up.processed[1].processed_ns = 60 * kS;
  EXPECT_TRUE(Has(AnalyzeReplay(held_up), "had mail waiting 40000 ms"));

  ReplayInput no_cut = ZoneCut();
  no_cut.steps.erase(no_cut.steps.begin() + 1);
  EXPECT_TRUE(Has(AnalyzeReplay(no_cut), "no partition-zone"));

  ReplayInput by_leader = ZoneCut();  // the zone not named: nobody in it
  by_leader.steps[1].text = "partition-zone leader 1m0s";
  EXPECT_TRUE(Has(AnalyzeReplay(by_leader), "in the cut zone 'leader'"));
}

// The smarthost stalls at 10 s until 70 s; outbound is paused at 50 s and
// resumed at 75 s. Sends time out at 10 s.
ReplayInput Flood() {
  ReplayInput in;
  in.kind = "outbound-flood";
  in.outbox_limit = 100;
  in.send_timeout = absl::Seconds(10);
  in.steps = {{"mark stall", 10 * kS, 10 * kS},
              {"mark pause", 50 * kS - kS / 10, 50 * kS - kS / 10},
              {"run quoratectl pause", 50 * kS - kS / 10, 50 * kS},
              {"mark unstall", 70 * kS, 70 * kS},
              {"mark resume", 75 * kS, 75 * kS}};
  auto send = [](int64_t end, int64_t ms, const std::string& result) {
    return Ev(end, "p-a", "send",
              {{"ms", absl::StrCat(ms)},
               {"result", result},
               {"db_connections_held", "0"},
               {"shard", "0"}});
  };
  in.events = {Ev(0, "p-a", "start", {{"zone", "az-a"}}), send(5 * kS, 3, "ok"),
               send(20 * kS, 10'000, "UNAVAILABLE"),
               send(50 * kS + kS / 20, 9'000, "CANCELLED"),  // stopped 50 ms
               send(76 * kS, 2, "ok")};
  for (int64_t t = 0; t <= 90; t += 5) {
    in.samples.push_back({{"t_mono_ns", absl::StrCat(t * kS)},
                          {"backlog", t >= 10 && t < 70 ? "500" : "0"},
                          {"outbox_pending", t >= 10 && t < 76 ? "900" : "0"},
                          {"outbox_max_shard", t >= 10 && t < 76 ? "100" : "0"},
                          {"outbox_min_shard", "20"}});
  }
  in.processed = {{"m1", 0, 9 * kS, 11 * kS, "p-a"},
                  {"m2", 0, 20 * kS, 30 * kS, "p-a"}};
  in.audit.accepted = 2;
  in.audit.processed_once = 2;
  return in;
}

TEST(ReplayTest, Flood_MeasuresTheFlood) {
  const ReplayResult r = AnalyzeReplay(Flood());
  EXPECT_TRUE(r.ok()) << r.text;
  EXPECT_EQ(Value(r, "smtp_longest_call_ms"), "10000");
  EXPECT_EQ(Value(r, "outbox_max_per_shard"), "100");
  EXPECT_EQ(Value(r, "pause_every_sender_stopped_ms"), "50");
  EXPECT_EQ(Value(r, "processed_during_stall"), "2");
  // The last send that went through ended at 76 s (the samples, every
  // 5 s, see the outbox empty only at 80 s).
  EXPECT_EQ(Value(r, "outbox_drained_after_resume_ms"), "1000");
}

TEST(ReplayTest, Flood_CatchesWhatGoesWrong) {
  auto with_send = [](Fields extra) {
    ReplayInput in = Flood();
    Fields e = in.events[2];
    for (auto& [k, v] : extra) e[k] = v;
    in.events[2] = e;
    return in;
  };
  EXPECT_TRUE(Has(AnalyzeReplay(with_send({{"ms", "12000"}})), "outlived"));
  EXPECT_TRUE(Has(AnalyzeReplay(with_send({{"db_connections_held", "1"}})),
                  "holding a database connection"));

  ReplayInput undrained = Flood();  // 2 replies still queued at the end
  undrained.audit.replies_queued = 5;
  undrained.audit.replies_sent = 3;
  const ReplayResult never = AnalyzeReplay(undrained);
  EXPECT_TRUE(Has(never, "never drained after the resume: 2 replies unsent"));
  EXPECT_EQ(Value(never, "outbox_drained_after_resume_ms"), "-");

  ReplayInput late = Flood();  // a send going on 3 s after the pause
  late.events[3]["t_mono_ns"] = absl::StrCat(53 * kS);
  EXPECT_TRUE(Has(AnalyzeReplay(late), "after the pause"));

  ReplayInput over = Flood();
  over.samples[5]["outbox_max_shard"] = "101";
  EXPECT_TRUE(Has(AnalyzeReplay(over), "past its bound"));

  ReplayInput lapsed = Flood();
  lapsed.events.push_back(Ev(30 * kS, "p-a", "expired"));
  EXPECT_TRUE(Has(AnalyzeReplay(lapsed), "sessions lapsed"));

  ReplayInput paused = Flood();
  paused.member_events.push_back({{"t_mono_ns", absl::StrCat(30 * kS)},
                                  {"id", "n1"},
                                  {"event", "mode"},
                                  {"mode", "paused"}});
  EXPECT_TRUE(Has(AnalyzeReplay(paused), "member pauses"));

  ReplayInput stuck = Flood();  // nothing processed while outboxes had room
  stuck.processed.pop_back();
  stuck.processed[0].processed_ns = 9 * kS;
  EXPECT_TRUE(Has(AnalyzeReplay(stuck), "inbound stopped"));

  ReplayInput lost = Flood();
  lost.audit.replies_lost = 1;
  EXPECT_TRUE(Has(AnalyzeReplay(lost), "replies lost"));

  ReplayInput unsampled = Flood();
  unsampled.samples.clear();
  EXPECT_TRUE(Has(AnalyzeReplay(unsampled), "no samples"));

  ReplayInput silent = Flood();  // no processor logged a send
  std::erase_if(silent.events,
                [](const Fields& e) { return e.at("event") == "send"; });
  EXPECT_TRUE(Has(AnalyzeReplay(silent), "no send"));
}

TEST(ReplayTest, SummarizesMediansPerKindOfRun) {
  std::vector<std::pair<std::string, Fields>> runs = {
      {"/x/zone-cut-a-postgres-1",
       {{"takeover_ms", "100"}, {"violations", "0"}}},
      {"/x/zone-cut-a-postgres-2",
       {{"takeover_ms", "300"}, {"violations", "1"}}},
      {"/x/zone-cut-a-postgres-3",
       {{"takeover_ms", "200"}, {"violations", "0"}}},
      {"/x/zone-cut-b-postgres-1",
       {{"takeover_ms", "50"}, {"violations", "0"}}}};
  const std::string t = SummarizeReplays(runs);
  EXPECT_NE(t.find("zone-cut-a-postgres (3 runs)"), std::string::npos) << t;
  EXPECT_NE(t.find("| takeover_ms | 200 (100-300) | 50 |"), std::string::npos)
      << t;
  EXPECT_NE(t.find("| violations | 1 in all | 0 in all |"), std::string::npos)
      << t;
}

}  // namespace
}  // namespace quorate_email
