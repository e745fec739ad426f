#include "chaos/network.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "chaos/sys.h"

namespace quorate::chaos {
namespace {

absl::Status Ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::string> out = RunCommand(argv);
  return out.ok() ? absl::OkStatus() : out.status();
}

// Kills every process inside a namespace, then removes it.
void DeleteNamespace(const std::string& ns) {
  absl::StatusOr<std::string> pids = RunCommand({"ip", "netns", "pids", ns});
  if (pids.ok()) {
    for (absl::string_view p : absl::StrSplit(*pids, '\n', absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(p, &pid) && pid > 0) kill(pid, SIGKILL);
    }
  }
  (void)RunCommand({"ip", "netns", "del", ns});
}

// Whether a process runs: not gone, and not a zombie nobody reaped yet
// (in a container, process 1 may never reap a killed run).
bool Alive(int pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || paren + 2 >= line.size() ||
         line[paren + 2] != 'Z';
}

}  // namespace

absl::StatusOr<std::unique_ptr<Network>> Network::Create(const std::string& run,
                                                         int members) {
  if (members < 1 || members > 200) {
    return absl::InvalidArgumentError("between 1 and 200 members");
  }
  std::unique_ptr<Network> n(new Network());
  n->run_ = run;
  n->bridge_ns_ = absl::StrCat(run, "-br");
  n->host_link_ = absl::StrCat(run, "h");
  // A /24 of 10.200.0.0/13 picked by the process id: runs side by side
  // (CTest runs two at once) get different ones.
  const int pid = static_cast<int>(getpid());
  const std::string net =
      absl::StrCat("10.", 200 + (pid / 250) % 8, ".", pid % 250);
  n->host_address_ = absl::StrCat(net, ".1");
  auto fail = [&n](absl::Status s) {
    n->Destroy();
    return s;
  };
  if (absl::Status s = Ip({"netns", "add", n->bridge_ns_}); !s.ok()) {
    return fail(s);
  }
  const std::string& br = n->bridge_ns_;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-n", br, "link", "set", "lo", "up"},
           {"-n", br, "link", "add", "br0", "type", "bridge"},
           {"-n", br, "link", "set", "br0", "up"},
           {"link", "add", n->host_link_, "type", "veth", "peer", "name",
            "host", "netns", br},
           {"-n", br, "link", "set", "host", "master", "br0", "up"},
           {"addr", "add", n->host_address_ + "/24", "dev", n->host_link_},
           {"link", "set", n->host_link_, "up"}}) {
    if (absl::Status s = Ip(args); !s.ok()) return fail(s);
  }
  for (int i = 0; i < members; ++i) {
    const std::string ns = absl::StrCat(run, "-", i);
    const std::string port = absl::StrCat("m", i);
    n->member_ns_.push_back(ns);
    n->addresses_.push_back(absl::StrCat(net, ".", 10 + i));
    if (absl::Status s = Ip({"netns", "add", ns}); !s.ok()) return fail(s);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"-n", ns, "link", "set", "lo", "up"},
             {"-n", br, "link", "add", port, "type", "veth", "peer", "name",
              "eth0", "netns", ns},
             {"-n", br, "link", "set", port, "master", "br0", "up"},
             {"-n", ns, "addr", "add", n->addresses_.back() + "/24", "dev",
              "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"}}) {
      if (absl::Status s = Ip(args); !s.ok()) return fail(s);
    }
    if (absl::Status s = n->Apply(i, LinkRules{}); !s.ok()) return fail(s);
  }
  return n;
}

std::unique_ptr<Network> Network::Loopback(int members) {
  std::unique_ptr<Network> n(new Network());
  n->loopback_ = true;
  n->destroyed_ = true;  // nothing to remove
  const int pid = static_cast<int>(getpid());
  const std::string net =
      absl::StrCat("127.", 100 + (pid / 250) % 100, ".", pid % 250);
  n->host_address_ = absl::StrCat(net, ".1");
  for (int i = 0; i < members; ++i) {
    n->member_ns_.push_back("");
    n->addresses_.push_back(absl::StrCat(net, ".", 10 + i));
  }
  return n;
}

Network::~Network() { Destroy(); }

absl::Status Network::Apply(int i, const LinkRules& rules) {
  if (loopback_) {
    if (rules == LinkRules{}) return absl::OkStatus();
    return absl::FailedPreconditionError(
        "cutting links needs network namespaces: run as root");
  }
  auto set = [this](const std::set<int>& members) {
    std::vector<std::string> a;
    for (int m : members) a.push_back(addresses_[m]);
    return absl::StrCat("{ ", absl::StrJoin(a, ", "), " }");
  };
  std::set<int> others;
  for (int m = 0; m < static_cast<int>(addresses_.size()); ++m) {
    if (m != i) others.insert(m);
  }
  std::string in, out;
  if (!rules.deaf_to.empty()) {
    absl::StrAppend(&in, "    ip saddr ", set(rules.deaf_to), " drop\n");
  }
  if (rules.loss_percent > 0 && !others.empty()) {
    absl::StrAppend(&in, "    ip saddr ", set(others),
                    " numgen random mod 100 < ", rules.loss_percent, " drop\n");
  }
  if (!rules.mute_to.empty()) {
    absl::StrAppend(&out, "    ip daddr ", set(rules.mute_to), " drop\n");
  }
  // Declaring the table first makes the flush valid on the first call.
  const std::string script = absl::StrCat(
      "table inet quorate_chaos {}\n"
      "flush table inet quorate_chaos\n"
      "table inet quorate_chaos {\n"
      "  chain in {\n    type filter hook input priority 0; policy accept;\n",
      in,
      "  }\n"
      "  chain out {\n    type filter hook output priority 0; policy accept;\n",
      out, "  }\n}\n");
  absl::StatusOr<std::string> r = RunCommand(
      {"ip", "netns", "exec", member_ns_[i], "nft", "-f", "-"}, script);
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status Network::ApplyAll(const std::vector<LinkRules>& rules) {
  for (int i = 0; i < static_cast<int>(member_ns_.size()); ++i) {
    const LinkRules none;
    const LinkRules& r = i < static_cast<int>(rules.size()) ? rules[i] : none;
    if (absl::Status s = Apply(i, r); !s.ok()) return s;
  }
  return absl::OkStatus();
}

void Network::Destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  for (const std::string& ns : member_ns_) DeleteNamespace(ns);
  if (!bridge_ns_.empty()) DeleteNamespace(bridge_ns_);
  // Deleting the bridge namespace removed the veth's other end, and with it
  // this one; this is for a half-built network.
  if (!host_link_.empty()) (void)RunCommand({"ip", "link", "del", host_link_});
}

std::vector<std::string> Network::RemoveStale() {
  std::vector<std::string> removed;
  DIR* d = opendir("/run/netns");
  if (d == nullptr) return removed;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) names.push_back(e->d_name);
  closedir(d);
  for (const std::string& name : names) {
    // qc<pid>-<suffix>: ours if the run's process is gone.
    if (name.rfind("qc", 0) != 0) continue;
    const size_t dash = name.find('-');
    int pid = 0;
    if (dash == std::string::npos ||
        !absl::SimpleAtoi(name.substr(2, dash - 2), &pid) || pid <= 0) {
      continue;
    }
    if (Alive(pid)) continue;
    DeleteNamespace(name);
    (void)RunCommand({"ip", "link", "del", absl::StrCat("qc", pid, "h")});
    removed.push_back(name);
  }
  return removed;
}

}  // namespace quorate::chaos
