// Injecting and healing the faults of a chaos run's schedule.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "chaos/runner_internal.h"
#include "chaos/sys.h"
#include "util/clock.h"

namespace quorate::chaos::internal {
namespace {

std::vector<LinkRules> Split(int n, const std::set<int>& a,
                             const std::set<int>& b) {
  std::vector<LinkRules> rules(static_cast<size_t>(n));
  for (int i : a) {
    rules[i].deaf_to = b;
    rules[i].mute_to = b;
  }
  return rules;
}

}  // namespace

absl::StatusOr<int> Runner::Target(const std::string& arg) {
  const int n = static_cast<int>(m_.size());
  auto any = [&] { return std::uniform_int_distribution<int>(0, n - 1)(rng_); };
  if (arg == "random") return any();
  if (arg == "leader" || arg == "follower") {
    const int leader = Leader();
    if (arg == "leader") return leader >= 0 ? leader : any();
    int f = any();
    while (n > 1 && f == leader) f = any();
    return f;
  }
  for (int i = 0; i < n; ++i) {
    if (m_[i].id == arg) return i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", arg, "' is not a member (n1 ... n", n,
                   "), leader, follower or random"));
}

std::string Runner::Names(const std::set<int>& members) const {
  std::vector<std::string> ids;
  for (int i : members) ids.push_back(m_[i].id);
  return absl::StrJoin(ids, ",");
}

std::set<int> Runner::Others(const std::set<int>& of) const {
  std::set<int> out;
  for (int i = 0; i < static_cast<int>(m_.size()); ++i) {
    if (!of.count(i)) out.insert(i);
  }
  return out;
}

absl::Status Runner::SetRules(const std::vector<LinkRules>& rules) {
  return net_->ApplyAll(rules);
}

absl::Status Runner::WriteFaults(const std::string& text) {
  const std::string path = o_.out_dir + "/faults";
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << "\n";
    if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);  // members never see half a file
  if (ec) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Two groups that cannot hear each other: A's members drop B's packets
// both ways, which cuts every link between them.
absl::StatusOr<std::string> Runner::Inject(const Step& step) {
  const int n = static_cast<int>(m_.size());
  const std::string& k = step.nemesis;
  const std::vector<std::string>& a = step.args;
  if (k == "quiet") return std::string("nothing");
  if (k == "isolate" || k == "one-way" || k == "kill" || k == "pause" ||
      k == "skew") {
    absl::StatusOr<int> t = Target(a[0]);
    if (!t.ok()) return t.status();
    const int i = *t;
    const std::string who = absl::StrCat(
        m_[i].id, a[0] == m_[i].id ? "" : absl::StrCat(" (", a[0], ")"));
    if (k == "isolate" || k == "one-way") {
      std::vector<LinkRules> rules(static_cast<size_t>(n));
      rules[i].deaf_to = Others({i});
      if (k == "isolate") rules[i].mute_to = Others({i});
      if (absl::Status s = SetRules(rules); !s.ok()) return s;
      return k == "isolate"
                 ? absl::StrCat(who, " cut off from every other member")
                 : absl::StrCat(who,
                                " hears no other member; they still hear it");
    }
    if (m_[i].pid <= 0) {
      // It exited by itself (a verdict reports it): nothing to signal, and
      // kill() with a pid of -1 would signal every process there is.
      return absl::FailedPreconditionError(
          absl::StrCat(m_[i].id, " is not running"));
    }
    down_.push_back(Period{MonotonicNowNs(), 0, k, i});
    if (k == "kill") {
      KillMember(i);
      // Its death ends any window it held: from when it surely happened.
      down_.back().start_ns = MonotonicNowNs();
      m_[i].expected_down = true;
      return absl::StrCat(who, " killed with SIGKILL");
    }
    if (k == "pause") {
      kill(m_[i].pid, SIGSTOP);
      m_[i].stopped = true;
      return absl::StrCat(who, " stopped with SIGSTOP");
    }
    double rate = 1;
    (void)absl::SimpleAtod(a[1], &rate);
    if (absl::Status s = RestartGracefully(i, rate); !s.ok()) return s;
    return absl::StrCat(who, " restarted with its clock at ", rate, "x");
  }
  if (k == "partition-zone" || k == "isolate-zone") {
    // Every namespace of the run: the members, then the services that
    // have one (in Setup's order).
    std::vector<std::string> zone_of, name_of;
    for (const Member& mem : m_) {
      zone_of.push_back(mem.zone);
      name_of.push_back(mem.id);
    }
    for (const ServiceProc& v : svc_) {
      if (v.net_index < 0) continue;
      zone_of.push_back(v.zone);
      name_of.push_back(v.name);
    }
    std::string zone = a[0];
    if (zone == "leader") {
      absl::StatusOr<int> leader = Target("leader");
      if (!leader.ok()) return leader.status();
      zone = m_[*leader].zone;
    }
    std::set<int> side, rest;
    for (int i = 0; i < static_cast<int>(zone_of.size()); ++i) {
      if (zone_of[i] == zone) {
        side.insert(i);
      } else if (zone_of[i] != "*" || k == "isolate-zone") {
        rest.insert(i);
      }
    }
    if (side.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("nothing is in zone '", a[0], "'"));
    }
    if (absl::Status s =
            SetRules(Split(static_cast<int>(zone_of.size()), side, rest));
        !s.ok()) {
      return s;
    }
    auto names = [&](const std::set<int>& of) {
      std::vector<std::string> out;
      for (int i : of) out.push_back(name_of[i]);
      return absl::StrJoin(out, ",");
    };
    return absl::StrCat(names(side), " | ", names(rest));
  }
  if (k == "partition" || k == "partition-halves") {
    std::set<int> side;
    if (k == "partition") {
      const std::vector<std::string> groups = absl::StrSplit(a[0], '|');
      if (groups.size() != 2) {
        return absl::InvalidArgumentError("'partition' takes two groups, A|B");
      }
      for (const std::string& id :
           std::vector<std::string>(absl::StrSplit(groups[0], ','))) {
        absl::StatusOr<int> t = Target(id);
        if (!t.ok()) return t.status();
        side.insert(*t);
      }
    } else {
      std::vector<int> order(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), rng_);
      side.insert(order.begin(), order.begin() + n / 2);
    }
    const std::set<int> rest = Others(side);
    if (absl::Status s = SetRules(Split(n, side, rest)); !s.ok()) return s;
    return absl::StrCat(Names(side), " | ", Names(rest));
  }
  if (k == "ring") {
    std::vector<LinkRules> rules(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      rules[i].deaf_to = Others({i, (i + 1) % n, (i + n - 1) % n});
      rules[i].mute_to = rules[i].deaf_to;
    }
    if (absl::Status s = SetRules(rules); !s.ok()) return s;
    return std::string(
        "each member hears only its two neighbours in n1..nN order");
  }
  if (k == "bridge") {
    std::vector<int> order(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    const int bridge = order[0];
    std::set<int> left(order.begin() + 1, order.begin() + 1 + (n - 1) / 2);
    std::set<int> right = Others(left);
    right.erase(bridge);
    if (absl::Status s = SetRules(Split(n, left, right)); !s.ok()) return s;
    return absl::StrCat(Names(left), " | ", Names(right), ", bridged by ",
                        m_[bridge].id);
  }
  if (k == "loss") {
    double p = 0;
    (void)absl::SimpleAtod(a[0], &p);
    std::vector<LinkRules> rules(static_cast<size_t>(n));
    for (LinkRules& r : rules) r.loss_percent = static_cast<int>(p);
    if (absl::Status s = SetRules(rules); !s.ok()) return s;
    return absl::StrCat(static_cast<int>(p),
                        " % of packets between members dropped");
  }
  if (k == "delay") {
    if (absl::Status s = WriteFaults(absl::StrCat("delay_ms=", a[0])); !s.ok())
      return s;
    return absl::StrCat("peer frames delayed by ", a[0], " ms (±50 %)");
  }
  if (k == "duplicate") {
    if (absl::Status s = WriteFaults(absl::StrCat("duplicate_percent=", a[0]));
        !s.ok()) {
      return s;
    }
    return absl::StrCat(a[0], " % of peer frames sent twice");
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown nemesis '", k, "'"));
}

absl::Status Runner::Heal(const Step& step) {
  const int64_t now = MonotonicNowNs();
  for (Period& p : down_) {
    if (p.end_ns == 0) p.end_ns = now;
  }
  for (int i = 0; i < static_cast<int>(m_.size()); ++i) {
    Member& mem = m_[i];
    if (mem.stopped) {
      if (mem.pid > 0) kill(mem.pid, SIGCONT);
      mem.stopped = false;
    }
    if (mem.pid < 0 && mem.expected_down) {
      mem.expected_down = false;
      if (absl::Status s = StartMember(i, 1.0); !s.ok()) return s;
    }
    if (mem.rate != 1.0) {
      if (absl::Status s = RestartGracefully(i, 1.0); !s.ok()) return s;
    }
  }
  if (step.nemesis == "delay" || step.nemesis == "duplicate") {
    if (absl::Status s = WriteFaults(""); !s.ok()) return s;
  }
  return SetRules({});
}

}  // namespace quorate::chaos::internal
