#include "chaos/schedule.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace quorate::chaos {
namespace {

// Arguments before the duration, by nemesis.
const std::map<std::string, int>& Arity() {
  static const auto* const arity = new std::map<std::string, int>{
      {"isolate", 1},        {"one-way", 1},      {"partition", 1},
      {"partition-zone", 1}, {"isolate-zone", 1}, {"partition-halves", 0},
      {"ring", 0},           {"bridge", 0},       {"kill", 1},
      {"pause", 1},          {"skew", 2},         {"loss", 1},
      {"delay", 1},          {"duplicate", 1},    {"quiet", 0}};
  return *arity;
}

absl::Status LineError(int line, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("line ", line, ": ", why));
}

}  // namespace

std::string Step::Describe() const {
  std::vector<std::string> words = {nemesis};
  if (nemesis == "await") words.push_back(absl::FormatDuration(duration));
  words.insert(words.end(), args.begin(), args.end());
  if (!Action()) words.push_back(absl::FormatDuration(duration));
  return absl::StrJoin(words, " ");
}

bool Step::Action() const {
  return nemesis == "await" || nemesis == "run" || nemesis == "stop" ||
         nemesis == "mark";
}

absl::Duration Schedule::Length() const {
  absl::Duration d = settle;
  for (const Step& s : steps) d += s.duration;
  return d;
}

double Schedule::MaxSkew() const {
  double most = 0;
  for (const Step& s : steps) {
    double r = 1;
    if (s.nemesis == "skew" && absl::SimpleAtod(s.args[1], &r)) {
      most = std::max(most, std::abs(r - 1));
    }
  }
  return most;
}

bool Schedule::CutsLinks() const {
  static const auto* const cutting = new std::set<std::string>{
      "isolate",        "one-way",      "partition",
      "partition-zone", "isolate-zone", "partition-halves",
      "ring",           "bridge",       "loss"};
  for (const Step& s : steps) {
    if (cutting->count(s.nemesis)) return true;
  }
  return false;
}

std::string Schedule::Describe() const {
  std::string out = absl::StrCat(
      "members ", members, "\nzones ", absl::StrJoin(zones, " "), "\nclients ",
      clients, "\nkeys ", keys, "\nrate ", rate, "\nsettle ",
      absl::FormatDuration(settle), "\nresume_within ",
      absl::FormatDuration(resume_within), "\n");
  for (const auto& [name, value] : vars) {
    absl::StrAppend(&out, "set ", name, " ", value, "\n");
  }
  for (const Service& v : services) {
    absl::StrAppend(&out, "service ", v.name, " ", v.zone, " ",
                    absl::StrJoin(v.command, " "), "\n");
    if (!v.ready.empty()) {
      absl::StrAppend(&out, "ready ", v.name, " ",
                      absl::FormatDuration(v.ready_within), " ",
                      absl::StrJoin(v.ready, " "), "\n");
    }
  }
  for (const Step& s : steps) absl::StrAppend(&out, s.Describe(), "\n");
  for (const auto& c : checks) {
    absl::StrAppend(&out, "check ", absl::StrJoin(c, " "), "\n");
  }
  return out;
}

absl::StatusOr<Schedule> ParseSchedule(const std::string& text) {
  Schedule s;
  bool zones_given = false;
  int n = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++n;
    absl::string_view line = raw.substr(0, raw.find('#'));
    std::vector<std::string> w =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (w.empty()) continue;
    const std::string& key = w[0];
    auto number = [&](double* out) {
      return w.size() == 2 && absl::SimpleAtod(w[1], out);
    };
    double v = 0;
    if (key == "members" || key == "clients" || key == "keys") {
      const int least = key == "clients" ? 0 : 1;
      if (!number(&v) || v < least || v > 100 || v != static_cast<int>(v)) {
        return LineError(
            n, absl::StrCat("'", key, "' takes a whole number from ", least,
                            " to 100"));
      }
      (key == "members"   ? s.members
       : key == "clients" ? s.clients
                          : s.keys) = static_cast<int>(v);
    } else if (key == "rate") {
      if (!number(&v) || v <= 0)
        return LineError(n, "'rate' takes a positive number");
      s.rate = v;
    } else if (key == "zones") {
      s.zones.assign(w.begin() + 1, w.end());
      zones_given = true;
    } else if (key == "settle" || key == "resume_within") {
      absl::Duration* d = key == "settle" ? &s.settle : &s.resume_within;
      if (w.size() != 2 || !absl::ParseDuration(w[1], d) ||
          *d < absl::ZeroDuration()) {
        return LineError(
            n, absl::StrCat("'", key, "' takes a duration such as 2s"));
      }
    } else if (key == "set") {
      if (w.size() != 3) return LineError(n, "'set' takes a name and a value");
      s.vars.emplace_back(w[1], w[2]);
    } else if (key == "service") {
      if (w.size() < 4) {
        return LineError(n, "'service' takes a name, a zone and a command");
      }
      for (const Service& other : s.services) {
        if (other.name == w[1]) {
          return LineError(n, absl::StrCat("a second service '", w[1], "'"));
        }
      }
      Service svc;
      svc.name = w[1];
      svc.zone = w[2];
      svc.command.assign(w.begin() + 3, w.end());
      s.services.push_back(std::move(svc));
    } else if (key == "ready") {
      Service* svc = nullptr;
      for (Service& other : s.services) {
        if (w.size() > 1 && other.name == w[1]) svc = &other;
      }
      if (w.size() < 4 || svc == nullptr) {
        return LineError(n,
                         "'ready' takes a service named above, a timeout and "
                         "a command");
      }
      if (!absl::ParseDuration(w[2], &svc->ready_within) ||
          svc->ready_within <= absl::ZeroDuration()) {
        return LineError(
            n, absl::StrCat("'", w[2], "' is not a duration such as 30s"));
      }
      svc->ready.assign(w.begin() + 3, w.end());
    } else if (key == "check") {
      if (w.size() < 2) return LineError(n, "'check' takes a command");
      s.checks.emplace_back(w.begin() + 1, w.end());
    } else if (key == "mark") {
      if (w.size() != 2) return LineError(n, "'mark' takes one name");
      s.steps.push_back(Step{key, {w[1]}, absl::ZeroDuration()});
    } else if (key == "await" || key == "run" || key == "stop") {
      Step step;
      step.nemesis = key;
      size_t first = 1;
      if (key == "await") {
        if (w.size() < 3 || !absl::ParseDuration(w[1], &step.duration) ||
            step.duration <= absl::ZeroDuration()) {
          return LineError(n,
                           "'await' takes a timeout such as 60s and a "
                           "command");
        }
        first = 2;
      }
      if (w.size() <= first || (key == "stop" && w.size() != 2)) {
        return LineError(n, key == "stop"
                                ? "'stop' takes service names, a,b,..."
                                : absl::StrCat("'", key, "' takes a command"));
      }
      step.args.assign(w.begin() + static_cast<ptrdiff_t>(first), w.end());
      s.steps.push_back(std::move(step));
    } else {
      auto it = Arity().find(key);
      if (it == Arity().end()) {
        return LineError(
            n, absl::StrCat("unknown setting or nemesis '", key, "'"));
      }
      if (static_cast<int>(w.size()) != it->second + 2) {
        return LineError(n, absl::StrCat("'", key, "' takes ", it->second,
                                         " argument(s) and a duration"));
      }
      Step step;
      step.nemesis = key;
      step.args.assign(w.begin() + 1, w.end() - 1);
      if (!absl::ParseDuration(w.back(), &step.duration) ||
          step.duration <= absl::ZeroDuration()) {
        return LineError(
            n, absl::StrCat("'", w.back(), "' is not a duration such as 5s"));
      }
      const std::string* amount = nullptr;
      if (key == "loss" || key == "duplicate" || key == "delay") {
        amount = &step.args[0];
      } else if (key == "skew") {
        amount = &step.args[1];
      }
      if (amount != nullptr) {
        const bool percent = key == "loss" || key == "duplicate";
        if (!absl::SimpleAtod(*amount, &v) || v < 0 || (percent && v > 100) ||
            (key == "skew" && v <= 0)) {
          return LineError(
              n, absl::StrCat("'", *amount, "' is not a valid amount for '",
                              key, "'"));
        }
      }
      s.steps.push_back(std::move(step));
    }
  }
  if (!zones_given) {
    for (int i = 0; i < s.members; ++i) {
      s.zones.push_back(std::string("az-") + static_cast<char>('a' + i % 3));
    }
  }
  if (static_cast<int>(s.zones.size()) != s.members) {
    return absl::InvalidArgumentError(
        absl::StrCat("'zones' names ", s.zones.size(), " zones for ", s.members,
                     " members"));
  }
  for (const Service& v : s.services) {
    if (v.zone == "*" || v.zone == "-") continue;
    if (std::find(s.zones.begin(), s.zones.end(), v.zone) == s.zones.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "service '", v.name, "' is in zone '", v.zone,
          "', which has no member (give a members' zone, * or -)"));
    }
  }
  std::set<std::string> names;
  for (const Service& v : s.services) names.insert(v.name);
  for (const Step& step : s.steps) {
    if (step.nemesis != "stop") continue;
    for (absl::string_view name : absl::StrSplit(step.args[0], ',')) {
      if (!names.count(std::string(name))) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", step.Describe(), "': no service '", name, "'"));
      }
    }
  }
  return s;
}

Schedule RandomSchedule(uint64_t seed, absl::Duration length) {
  Schedule s;
  s.zones = {"az-a", "az-a", "az-b", "az-b", "az-c"};
  // The bound the short suite holds (tests/chaos/short/*.chaos say why).
  s.resume_within = absl::Seconds(1);
  std::mt19937_64 rng(seed);
  auto pick = [&rng](const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<size_t>(0, from.size() - 1)(rng)];
  };
  auto seconds = [&rng](int lo, int hi) {
    return absl::Milliseconds(
        std::uniform_int_distribution<int>(lo * 1000, hi * 1000)(rng));
  };
  const std::vector<std::string> kinds = {
      "isolate", "one-way", "partition-zone", "partition-halves",
      "ring",    "bridge",  "kill",           "pause",
      "skew",    "loss",    "delay",          "duplicate"};
  const std::vector<std::string> targets = {"leader", "follower", "random"};
  while (s.Length() < length) {
    Step step;
    step.nemesis = pick(kinds);
    const std::string& k = step.nemesis;
    if (k == "isolate" || k == "one-way" || k == "kill" || k == "pause" ||
        k == "skew") {
      step.args.push_back(pick(targets));
    }
    if (k == "partition-zone")
      step.args.push_back(pick({"az-a", "az-b", "az-c", "leader"}));
    if (k == "skew") step.args.push_back(pick({"0.7", "0.9", "1.1", "1.3"}));
    if (k == "loss" || k == "duplicate")
      step.args.push_back(pick({"5", "20", "50"}));
    if (k == "delay") step.args.push_back(pick({"5", "20", "100"}));
    step.duration = seconds(2, 8);
    s.steps.push_back(std::move(step));
    s.steps.push_back(Step{"quiet", {}, seconds(2, 4)});
  }
  return s;
}

}  // namespace quorate::chaos
