// minimal_member: the smallest service that embeds a Quorate member.
//
//   minimal_member DATA_DIR
//
// It starts a one-member cluster (so it elects itself at once), waits until
// it leads, prints its status, and stops. With more members, list them all
// in `peers` on every member.
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>

#include "quorate/member.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: minimal_member DATA_DIR\n");
    return 2;
  }
  std::mutex mu;
  std::condition_variable changed;
  bool leading = false;

  quorate::MemberOptions o;
  o.id = "solo";
  o.zone = "az-a";
  o.cluster_id = "example";
  o.listen_address = "127.0.0.1:0";  // any free port
  o.admin_address = "127.0.0.1:0";
  o.data_dir = argv[1];
  o.peers = {{"solo", "az-a", "127.0.0.1:0"}};
  o.on_role_change = [&](quorate::Role role, uint64_t) {
    std::lock_guard<std::mutex> lock(mu);
    leading = role == quorate::Role::kLeader;
    changed.notify_all();
  };
  absl::StatusOr<std::unique_ptr<quorate::Member>> member =
      quorate::Member::Start(o);
  if (!member.ok()) {
    std::fprintf(stderr, "cannot start: %s\n",
                 std::string(member.status().message()).c_str());
    return 1;
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    if (!changed.wait_for(lock, std::chrono::seconds(10),
                          [&] { return leading; })) {
      std::fprintf(stderr, "did not become leader within 10 s\n");
      return 1;
    }
  }
  const quorate::MemberStatus s = (*member)->GetStatus();
  std::printf("member %s leads cluster %s in term %llu; admin on %s\n",
              s.id.c_str(), s.cluster_id.c_str(),
              static_cast<unsigned long long>(s.term), s.admin_address.c_str());
  (*member)->Stop();
  return 0;
}
