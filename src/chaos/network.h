// chaos/network.h: a network namespace per member (and per service of a
// schedule, numbered after the members), joined by veth pairs to
// a bridge in a namespace of its own, and nftables rules inside each
// member's namespace to cut or thin its links.
//
//   bridge namespace qc<run>-br:  br0 ── m0 … m<n-1>, host
//   member namespace qc<run>-<i>: eth0 = 10.A.B.(10+i)/24
//   this process's namespace:     qc<run>h = 10.A.B.1/24 (the clients)
//
// Rules only ever touch traffic between members: the clients (this process)
// reach every member throughout, as clients in every zone would.
#ifndef QUORATE_CHAOS_NETWORK_H_
#define QUORATE_CHAOS_NETWORK_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace quorate::chaos {

// What member i's namespace drops.
struct LinkRules {
  std::set<int> deaf_to;  // packets from these members
  std::set<int> mute_to;  // packets to these members
  int loss_percent = 0;   // of packets from any other member, at random
  bool operator==(const LinkRules&) const = default;
};

class Network {
 public:
  // Creates the namespaces and links; `run` names them. Call Destroy() (the
  // destructor does too) to remove them.
  static absl::StatusOr<std::unique_ptr<Network>> Create(const std::string& run,
                                                         int members);
  // Without root: no namespaces, each member an address of its own on the
  // loopback interface (127.A.B.(10+i); every 127/8 address is local), so
  // that they can all use the same ports. No link can be cut: Apply() with
  // any rule fails. Kills, pauses, skews, delays and duplicates still work.
  static std::unique_ptr<Network> Loopback(int members);
  bool loopback() const { return loopback_; }
  ~Network();

  const std::string& netns(int i) const { return member_ns_[i]; }
  const std::string& address(int i) const { return addresses_[i]; }
  const std::string& host_address() const { return host_address_; }

  // Replaces member i's rules.
  absl::Status Apply(int i, const LinkRules& rules);
  // Every member's rules at once (absent members: none).
  absl::Status ApplyAll(const std::vector<LinkRules>& rules);

  void Destroy();

  // Removes namespaces and links left by runs whose process is gone (a run
  // killed before it could clean up). Returns what it removed.
  static std::vector<std::string> RemoveStale();

 private:
  Network() = default;

  std::string run_;
  std::string bridge_ns_;
  std::string host_link_;
  std::vector<std::string> member_ns_;
  std::vector<std::string> addresses_;
  std::string host_address_;
  bool destroyed_ = false;
  bool loopback_ = false;
};

}  // namespace quorate::chaos

#endif  // QUORATE_CHAOS_NETWORK_H_
