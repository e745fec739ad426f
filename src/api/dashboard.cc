#include "api/dashboard.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "admin/admin_server.h"
#include "util/thread_name.h"

namespace quorate::api {
namespace {

using admin::JsonQuote;

constexpr size_t kMaxSessions = 100;
constexpr size_t kTimelineLength = 200;
// The page is read this long after it was last asked for.
constexpr absl::Duration kInterest = absl::Minutes(1);

std::string Hex(uint64_t v) { return absl::StrFormat("%x", v); }

// Lease (hex) -> the name an application card gives it.
std::map<std::string, std::string> LeaseNames(const DashboardSnapshot& s) {
  std::map<std::string, std::string> out;
  for (const auto& card : s.cards) {
    const std::string& key = card.first;
    const std::string& value = card.second;
    // A flat object: "lease": "HEX" and perhaps "name": "...".
    auto field = [&](absl::string_view name) -> std::string {
      const std::string k = absl::StrCat("\"", name, "\"");
      size_t at = value.find(k);
      if (at == std::string::npos) return "";
      at = value.find('"', value.find(':', at) + 1);
      if (at == std::string::npos) return "";
      const size_t end = value.find('"', at + 1);
      return end == std::string::npos ? "" : value.substr(at + 1, end - at - 1);
    };
    const std::string lease = field("lease");
    if (lease.empty()) continue;
    std::string name = field("name");
    if (name.empty()) name = key.substr(key.rfind('/') + 1);
    out[lease] = name;
  }
  return out;
}

std::string Named(const std::map<std::string, std::string>& names,
                  uint64_t lease) {
  if (lease == 0) return "nobody";
  auto it = names.find(Hex(lease));
  return it == names.end() ? Hex(lease) : it->second;
}

// The leader the members agree on (the highest term's), or "".
std::pair<std::string, uint64_t> LeaderOf(const DashboardSnapshot& s) {
  std::pair<std::string, uint64_t> out{"", 0};
  for (const ClusterMember& m : s.members) {
    if (m.role == "leader" && m.term >= out.second) out = {m.id, m.term};
  }
  return out;
}

}  // namespace

DashboardSnapshot ReadDashboard(Client* client,
                                const std::function<bool()>& stopping) {
  DashboardSnapshot s;
  auto stop = [&] { return stopping && stopping(); };
  std::vector<std::string> errors;
  absl::StatusOr<std::vector<ClusterMember>> members = client->Members();
  if (members.ok()) {
    s.members = *std::move(members);
    s.members_read = true;
  } else {
    errors.push_back(absl::StrCat("members: ", members.status().message()));
  }
  if (stop()) return s;
  absl::StatusOr<std::vector<uint64_t>> leases = client->Leases();
  if (leases.ok()) {
    s.sessions_read = true;
    for (size_t i = 0; i < leases->size() && i < kMaxSessions; ++i) {
      if (stop()) return s;
      absl::StatusOr<LeaseStatus> st = client->LeaseTimeToLive((*leases)[i]);
      if (absl::IsNotFound(st.status())) continue;  // ended meanwhile
      if (!st.ok()) {
        // Unknown, not ended: the sessions keep the last reading's.
        s.sessions_read = false;
        errors.push_back(absl::StrCat("sessions: ", st.status().message()));
        break;
      }
      s.sessions.push_back({st->id, absl::ToInt64Milliseconds(st->remaining),
                            absl::ToInt64Milliseconds(st->granted_ttl),
                            st->key_count});
    }
  } else {
    errors.push_back(absl::StrCat("sessions: ", leases.status().message()));
  }
  if (stop()) return s;
  // The groups: every ".../GROUP/config" key under quorate/shards/.
  RangeOptions keys;
  keys.range_end = PrefixEnd("quorate/shards/");
  keys.keys_only = true;
  absl::StatusOr<RangeResult> shard_keys =
      client->Range("quorate/shards/", keys);
  if (shard_keys.ok()) {
    s.groups_read = true;
    for (const KeyRecord& k : shard_keys->kvs) {
      std::vector<std::string> parts = absl::StrSplit(k.key, '/');
      if (parts.size() != 4 || parts[3] != "config") continue;
      if (stop()) return s;
      absl::StatusOr<std::vector<ShardInfo>> shards =
          ListShards(client, parts[2]);
      if (shards.ok()) {
        s.groups.push_back({parts[2], *std::move(shards)});
      } else {
        s.groups_read = false;
        errors.push_back(absl::StrCat("shard group ", parts[2], ": ",
                                      shards.status().message()));
      }
    }
  } else {
    errors.push_back(
        absl::StrCat("shard groups: ", shard_keys.status().message()));
  }
  if (stop()) return s;
  absl::StatusOr<std::vector<WorkloadState>> workloads = ListWorkloads(client);
  if (workloads.ok()) {
    s.workloads = *std::move(workloads);
    s.workloads_read = true;
  } else {
    errors.push_back(absl::StrCat("workloads: ", workloads.status().message()));
  }
  if (stop()) return s;
  RangeOptions cards;
  cards.range_end = PrefixEnd(kDashboardPrefix);
  cards.limit = 1000;
  absl::StatusOr<RangeResult> card_kvs = client->Range(kDashboardPrefix, cards);
  if (card_kvs.ok()) {
    s.cards_read = true;
    for (const KeyRecord& k : card_kvs->kvs)
      s.cards.push_back({k.key, k.value});
  } else {
    errors.push_back(absl::StrCat("cards: ", card_kvs.status().message()));
  }
  s.error = absl::StrJoin(errors, "; ");
  return s;
}

std::vector<TimelineEvent> DashboardDiff(const DashboardSnapshot& before,
                                         const DashboardSnapshot& after,
                                         int64_t t_ms) {
  std::vector<TimelineEvent> out;
  auto add = [&](const char* kind, std::string text) {
    out.push_back({t_ms, kind, std::move(text)});
  };
  const auto old_leader = LeaderOf(before);
  const auto new_leader = LeaderOf(after);
  if (new_leader != old_leader) {
    if (new_leader.first.empty()) {
      add("election", absl::StrCat("no leader (", old_leader.first,
                                   " led in term ", old_leader.second, ")"));
    } else {
      add("election",
          absl::StrCat(new_leader.first, " leads in term ", new_leader.second));
    }
  }
  std::map<std::string, const ClusterMember*> was;
  for (const ClusterMember& m : before.members) was[m.id] = &m;
  for (const ClusterMember& m : after.members) {
    auto it = was.find(m.id);
    if (it == was.end()) continue;
    const std::string then =
        it->second->error.ok() ? it->second->mode : "unreachable";
    const std::string now = m.error.ok() ? m.mode : "unreachable";
    if (then == now) continue;
    if (now == "paused") {
      add("mode", absl::StrCat(m.id, " (", m.zone,
                               ") paused: it lost contact with its quorum"));
    } else if (now == "active") {
      add("mode", absl::StrCat(m.id, " (", m.zone, ") active again"));
    } else {
      add("mode", absl::StrCat(m.id, " (", m.zone, ") does not answer"));
    }
  }
  const auto names = LeaseNames(after);
  auto old_names = LeaseNames(before);
  for (const auto& [lease, name] : names) old_names.emplace(lease, name);
  for (const DashboardSnapshot::Group& g : after.groups) {
    auto old_group =
        std::find_if(before.groups.begin(), before.groups.end(),
                     [&](const auto& o) { return o.name == g.name; });
    if (old_group == before.groups.end()) {
      add("shard", absl::StrCat("shard group ", g.name, " (", g.shards.size(),
                                " shards)"));
      continue;
    }
    for (const ShardInfo& sh : g.shards) {
      if (sh.shard >= old_group->shards.size()) continue;
      const ShardInfo& o = old_group->shards[sh.shard];
      if (o.owner == sh.owner) continue;
      add("shard",
          absl::StrCat(g.name, "/", sh.shard, ": ", Named(old_names, o.owner),
                       " -> ", Named(old_names, sh.owner), " (epoch ", sh.epoch,
                       ")"));
    }
  }
  std::map<std::string, const WorkloadState*> switches;
  for (const WorkloadState& w : before.workloads) switches[w.name] = &w;
  for (const WorkloadState& w : after.workloads) {
    auto it = switches.find(w.name);
    const bool was_running = it == switches.end() || it->second->running;
    if (was_running == w.running) continue;
    add("workload", w.running ? absl::StrCat(w.name, " resumed")
                              : absl::StrCat(w.name, " paused: ", w.reason));
  }
  std::set<uint64_t> now_leases;
  for (const auto& l : after.sessions) now_leases.insert(l.id);
  for (const auto& l : before.sessions) {
    if (now_leases.count(l.id) == 0) {
      add("session",
          absl::StrCat("session ", Named(old_names, l.id), " ended"));
    }
  }
  return out;
}

std::string DashboardJson(const DashboardSnapshot& s,
                          const std::deque<TimelineEvent>& timeline,
                          const std::string& self,
                          const std::string& cluster_id, int64_t t_ms) {
  std::string out = absl::StrCat(
      "{\"self\": ", JsonQuote(self),
      ", \"cluster_id\": ", JsonQuote(cluster_id), ", \"generated_ms\": ", t_ms,
      ", \"error\": ", JsonQuote(s.error), ", \"members\": [");
  for (size_t i = 0; i < s.members.size(); ++i) {
    const ClusterMember& m = s.members[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"id\": ", JsonQuote(m.id),
                    ", \"zone\": ", JsonQuote(m.zone),
                    ", \"address\": ", JsonQuote(m.address),
                    ", \"role\": ", JsonQuote(m.role), ", \"term\": ", m.term,
                    ", \"leader_id\": ", JsonQuote(m.leader_id),
                    ", \"mode\": ", JsonQuote(m.mode),
                    ", \"commit_index\": ", m.commit_index,
                    ", \"error\": ", JsonQuote(m.error.message()),
                    ", \"links\": [");
    for (size_t j = 0; j < m.links.size(); ++j) {
      const ClusterMember::Link& l = m.links[j];
      absl::StrAppend(&out, j ? ", " : "", "{\"id\": ", JsonQuote(l.id),
                      ", \"zone\": ", JsonQuote(l.zone),
                      ", \"reachable\": ", l.reachable ? "true" : "false",
                      ", \"last_contact_ms\": ", l.last_contact_ms, "}");
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "], \"sessions\": [");
  for (size_t i = 0; i < s.sessions.size(); ++i) {
    const auto& l = s.sessions[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"lease\": ", JsonQuote(Hex(l.id)),
                    ", \"remaining_ms\": ", l.remaining_ms,
                    ", \"granted_ms\": ", l.granted_ms, ", \"keys\": ", l.keys,
                    "}");
  }
  absl::StrAppend(&out, "], \"groups\": [");
  for (size_t i = 0; i < s.groups.size(); ++i) {
    const auto& g = s.groups[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"name\": ", JsonQuote(g.name),
                    ", \"shards\": [");
    for (size_t j = 0; j < g.shards.size(); ++j) {
      const ShardInfo& sh = g.shards[j];
      absl::StrAppend(&out, j ? ", " : "", "{\"shard\": ", sh.shard,
                      ", \"owner\": ", JsonQuote(Hex(sh.owner)),
                      ", \"zone\": ", JsonQuote(sh.zone),
                      ", \"epoch\": ", sh.epoch,
                      ", \"state\": ", JsonQuote(sh.state), "}");
    }
    absl::StrAppend(&out, "]}");
  }
  absl::StrAppend(&out, "], \"workloads\": [");
  for (size_t i = 0; i < s.workloads.size(); ++i) {
    const WorkloadState& w = s.workloads[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"name\": ", JsonQuote(w.name),
                    ", \"running\": ", w.running ? "true" : "false",
                    ", \"reason\": ", JsonQuote(w.reason), "}");
  }
  absl::StrAppend(&out, "], \"cards\": [");
  for (size_t i = 0; i < s.cards.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "",
                    "{\"key\": ", JsonQuote(s.cards[i].first),
                    ", \"value\": ", JsonQuote(s.cards[i].second), "}");
  }
  absl::StrAppend(&out, "], \"timeline\": [");
  for (size_t i = 0; i < timeline.size(); ++i) {
    const TimelineEvent& e = timeline[i];
    absl::StrAppend(&out, i ? ", " : "", "{\"t_ms\": ", e.t_ms,
                    ", \"kind\": ", JsonQuote(e.kind),
                    ", \"text\": ", JsonQuote(e.text), "}");
  }
  absl::StrAppend(&out, "]}\n");
  return out;
}

Dashboard::Dashboard(ClientOptions options, std::string self,
                     std::string cluster_id, absl::Duration interval)
    : options_(std::move(options)),
      self_(std::move(self)),
      cluster_id_(std::move(cluster_id)),
      interval_(interval) {
  json_ = DashboardJson({}, {}, self_, cluster_id_,
                        absl::ToUnixMillis(absl::Now()));
  thread_ = std::thread([this] { Run(); });
}

Dashboard::~Dashboard() { Stop(); }

void Dashboard::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
    wake_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

std::string Dashboard::State() {
  MutexLock lock(&mu_);
  if (wanted_until_ < absl::Now()) wake_.SignalAll();
  wanted_until_ = absl::Now() + kInterest;
  return json_;
}

void Dashboard::Run() {
  SetThreadName("q-dashboard");
  std::unique_ptr<Client> client;
  DashboardSnapshot last;
  bool have_last = false;
  std::deque<TimelineEvent> timeline;
  while (true) {
    {
      MutexLock lock(&mu_);
      while (!stop_ && wanted_until_ < absl::Now()) wake_.Wait(&mu_);
      if (stop_) return;
    }
    const absl::Time started = absl::Now();
    if (client == nullptr) {
      absl::StatusOr<std::unique_ptr<Client>> c = Client::Create(options_);
      if (c.ok()) client = *std::move(c);
    }
    if (client != nullptr) {
      DashboardSnapshot now = ReadDashboard(client.get(), [this] {
        MutexLock lock(&mu_);
        return stop_;
      });
      const int64_t t_ms = absl::ToUnixMillis(absl::Now());
      // A reading that failed in part keeps what the last one had there
      // (and reports the failure in "error").
      if (have_last) {
        if (!now.members_read) now.members = last.members;
        if (!now.sessions_read) now.sessions = last.sessions;
        if (!now.groups_read) now.groups = last.groups;
        if (!now.workloads_read) now.workloads = last.workloads;
        if (!now.cards_read) now.cards = last.cards;
        now.members_read = now.sessions_read = now.groups_read =
            now.workloads_read = now.cards_read = true;
      }
      if (!have_last) {
        timeline.push_back(
            {t_ms, "start",
             absl::StrCat(self_, " began watching the cluster")});
      } else {
        for (TimelineEvent& e : DashboardDiff(last, now, t_ms)) {
          timeline.push_back(std::move(e));
        }
      }
      while (timeline.size() > kTimelineLength) timeline.pop_front();
      std::string json = DashboardJson(now, timeline, self_, cluster_id_, t_ms);
      last = std::move(now);
      have_last = true;
      MutexLock lock(&mu_);
      json_ = std::move(json);
    }
    MutexLock lock(&mu_);
    const absl::Duration left = interval_ - (absl::Now() - started);
    if (!stop_ && left > absl::ZeroDuration()) {
      wake_.WaitWithTimeout(&mu_, left);
    }
    if (stop_) return;
  }
}

}  // namespace quorate::api
