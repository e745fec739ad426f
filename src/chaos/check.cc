#include "chaos/check.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "chaos/linearizability.h"

namespace quorate::chaos {
namespace {

// The value of "key" in one flat JSON object of the event log, without
// its quotes if it is a string; false if absent.
bool Field(const std::string& line, const std::string& key, std::string* out) {
  const std::string pattern = absl::StrCat("\"", key, "\":");
  size_t at = line.find(pattern);
  if (at == std::string::npos) return false;
  at += pattern.size();
  while (at < line.size() && line[at] == ' ') ++at;
  if (at < line.size() && line[at] == '"') {
    const size_t end = line.find('"', at + 1);
    if (end == std::string::npos) return false;
    *out = line.substr(at + 1, end - at - 1);
    return true;
  }
  size_t end = at;
  while (end < line.size() && line[end] != ',' && line[end] != '}') ++end;
  *out = line.substr(at, end - at);
  return !out->empty();
}

std::string Seconds(int64_t ns) {
  return absl::StrCat(absl::SixDigits(static_cast<double>(ns) / 1e9), " s");
}

}  // namespace

absl::StatusOr<std::vector<Event>> ReadEventLog(const std::string& path) {
  std::ifstream in(path);
  std::vector<Event> out;
  if (!in) return out;  // a member that never started writes none
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    Event e;
    std::string t, term, until;
    auto bad = [&](const std::string& why) {
      return absl::DataLossError(
          absl::StrCat(path, ":", n, ": ", why, ": ", line));
    };
    if (!Field(line, "t_mono_ns", &t) || !absl::SimpleAtoi(t, &e.t_ns) ||
        !Field(line, "id", &e.id) || !Field(line, "event", &e.event)) {
      return bad("not an event (t_mono_ns, id and event are required)");
    }
    if (Field(line, "term", &term) && !absl::SimpleAtoi(term, &e.term)) {
      return bad("the term is not a number");
    }
    if (e.event == "role") {
      if (!Field(line, "role", &e.role))
        return bad("a role event without a role");
    } else if (e.event == "mode") {
      if (!Field(line, "mode", &e.mode))
        return bad("a mode event without a mode");
      if (e.mode == "paused" &&
          (!Field(line, "active_until_mono_ns", &until) ||
           !absl::SimpleAtoi(until, &e.active_until_ns))) {
        return bad("a paused event without active_until_mono_ns");
      }
      Field(line, "reason", &e.reason);
    }
    out.push_back(std::move(e));
  }
  return out;
}

Verdict CheckLinearizability(const std::vector<Op>& history) {
  Verdict v{"linearizable", true, ""};
  std::vector<RegisterOp> ops;
  uint64_t id = 0;
  size_t unknown = 0;
  for (const Op& op : history) {
    ++id;
    if (op.outcome == Op::Outcome::kFailed) continue;
    // Put-once keys are registers too, written once and read at the end.
    RegisterOp r;
    r.key = op.key;
    r.is_write = op.type != Op::Type::kRead;
    r.value = op.value;
    r.call = op.call_ns;
    r.ret = op.outcome == Op::Outcome::kOk ? op.return_ns : RegisterOp::kNever;
    if (op.outcome == Op::Outcome::kUnknown) {
      if (!r.is_write) continue;
      ++unknown;
    }
    r.id = id;
    ops.push_back(std::move(r));
  }
  const LinearizabilityResult res = CheckLinearizable(ops);
  v.ok = res.ok;
  v.detail =
      res.ok ? absl::StrCat(ops.size(), " register operations (", unknown,
                            " writes of unknown outcome) have a linearization")
             : absl::StrCat("VIOLATION: the ", res.ops, " operations on key '",
                            res.key, "' have no linearization");
  return v;
}

Verdict CheckNoLostWrites(const std::vector<Op>& history) {
  Verdict v{"no acknowledged write lost", true, ""};
  std::map<std::string, std::string> final_read;
  for (const Op& op : history) {
    if (op.client == -1 && op.outcome == Op::Outcome::kOk) {
      final_read[op.key] = op.value;
    }
  }
  size_t acked = 0;
  std::vector<std::string> lost;
  for (const Op& op : history) {
    if (op.type != Op::Type::kPutOnce || op.outcome != Op::Outcome::kOk)
      continue;
    ++acked;
    auto it = final_read.find(op.key);
    if (it == final_read.end()) {
      lost.push_back(absl::StrCat(op.key, " (never read back)"));
    } else if (it->second != op.value) {
      lost.push_back(absl::StrCat(op.key, " (read '", it->second, "', wrote '",
                                  op.value, "')"));
    }
  }
  v.ok = lost.empty();
  if (lost.size() > 5) lost.resize(5);
  v.detail =
      v.ok ? absl::StrCat(acked, " acknowledged put-once writes all read back")
           : absl::StrCat("VIOLATION: lost ", absl::StrJoin(lost, ", "));
  return v;
}

std::vector<Verdict> CheckEvents(
    const std::vector<Event>& events, int64_t end_ns,
    const std::map<std::string, std::vector<int64_t>>& deaths) {
  std::vector<Verdict> out;
  // At most one leader per term.
  std::map<uint64_t, std::set<std::string>> leaders;
  // The earliest moment each term got a leader.
  std::map<uint64_t, int64_t> led_at;
  for (const Event& e : events) {
    if (e.event != "role" || e.role != "leader") continue;
    leaders[e.term].insert(e.id);
    auto [it, fresh] = led_at.emplace(e.term, e.t_ns);
    if (!fresh) it->second = std::min(it->second, e.t_ns);
  }
  Verdict one{"one leader per term", true, ""};
  for (const auto& [term, ids] : leaders) {
    if (ids.size() > 1) {
      one.ok = false;
      one.detail = absl::StrCat("VIOLATION: term ", term, " had leaders ",
                                absl::StrJoin(ids, ", "));
      break;
    }
  }
  if (one.ok)
    one.detail =
        absl::StrCat(leaders.size(), " terms had a leader, each one only");
  out.push_back(one);

  // Active windows: from an active event to the paused event after it (its
  // active_until), or to the end of the run if none came.
  Verdict win{"active windows end before a later term's leader", true, ""};
  std::map<std::string, std::vector<const Event*>> by_member;
  size_t windows = 0;
  for (const Event& e : events) {
    if (e.event == "mode") by_member[e.id].push_back(&e);
  }
  for (auto& [id, list] : by_member) {
    std::sort(list.begin(), list.end(),
              [](const Event* a, const Event* b) { return a->t_ns < b->t_ns; });
    for (size_t i = 0; i < list.size() && win.ok; ++i) {
      if (list[i]->mode != "active") continue;
      ++windows;
      const uint64_t term = list[i]->term;
      int64_t until = end_ns;
      for (size_t j = i + 1; j < list.size(); ++j) {
        if (list[j]->mode == "paused") {
          until = list[j]->active_until_ns;
          break;
        }
      }
      // A process killed while active logged no pause: its death ended it.
      if (auto d = deaths.find(id); d != deaths.end()) {
        for (int64_t t : d->second) {
          if (t >= list[i]->t_ns && t < until) until = t;
        }
      }
      for (auto it = led_at.upper_bound(term); it != led_at.end(); ++it) {
        if (it->second <= until) {
          win.ok = false;
          win.detail =
              absl::StrCat("VIOLATION: ", id, "'s window of term ", term,
                           " lasted until ", Seconds(until), ", but term ",
                           it->first, " had a leader at ", Seconds(it->second));
          break;
        }
      }
    }
  }
  if (win.ok) {
    win.detail =
        windows == 0
            ? "no mode events were logged (no partition guard): "
              "nothing to check"
            : absl::StrCat(
                  windows,
                  " active windows, each over before the next term's leader");
  }
  out.push_back(win);
  return out;
}

Verdict CheckResume(const std::vector<Event>& events,
                    const std::vector<Heal>& heals,
                    const std::vector<std::string>& ids, int64_t bound_ns,
                    const std::map<std::string, std::vector<int64_t>>& deaths) {
  Verdict v{absl::StrCat("members resume within ", bound_ns / 1'000'000,
                         " ms of a heal"),
            true, ""};
  std::vector<std::string> seen;
  size_t checked = 0;
  for (const Heal& h : heals) {
    if (h.quiet_until_ns - h.at_ns < bound_ns) continue;  // no time to tell
    ++checked;
    int64_t slowest = 0;
    std::string who;
    for (const std::string& id : ids) {
      // Its mode at the heal, and its first active event after it.
      bool active = false;
      int64_t last = 0;  // time of its last mode event before the heal
      int64_t resumed = -1;
      for (const Event& e : events) {  // events are in time order
        if (e.id != id || e.event != "mode") continue;
        if (e.t_ns <= h.at_ns) {
          active = e.mode == "active";
          last = e.t_ns;
        } else if (e.mode == "active" && resumed < 0) {
          resumed = e.t_ns;
        }
      }
      if (auto d = deaths.find(id); d != deaths.end()) {
        for (int64_t t : d->second) {
          if (t > last && t <= h.at_ns) active = false;  // killed since
        }
      }
      const int64_t took = active ? 0 : resumed < 0 ? -1 : resumed - h.at_ns;
      if (took < 0 || took > bound_ns) {
        v.ok = false;
        v.detail = absl::StrCat(
            "VIOLATION: ", id, took < 0 ? " never resumed" : " resumed ",
            took < 0 ? "" : absl::StrCat(took / 1'000'000, " ms"),
            " after the heal at ", Seconds(h.at_ns));
        return v;
      }
      if (took > slowest) {
        slowest = took;
        who = id;
      }
    }
    seen.push_back(
        who.empty() ? "all active at once"
                    : absl::StrCat(who, " after ", slowest / 1'000'000, " ms"));
  }
  v.detail = checked == 0 ? "no heal was followed by enough quiet to tell"
                          : absl::StrCat("slowest per heal: ",
                                         absl::StrJoin(seen, "; "));
  return v;
}

}  // namespace quorate::chaos
