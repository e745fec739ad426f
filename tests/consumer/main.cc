// Links the installed library the way a service would, and prints what it
// linked. Exits non-zero if the library does not report the version given
// as argv[1].
#include <cstring>
#include <iostream>

#include "quorate/election.h"
#include "quorate/shards.h"
#include "quorate/version.h"

int main(int argc, char** argv) {
  const quorate::BuildInfo info = quorate::GetBuildInfo();
  std::cout << "quorate " << info.version;
  for (const auto& dep : info.dependencies) {
    std::cout << " " << dep.first << "=" << dep.second;
  }
  std::cout << "\n";
  if (argc > 1 && std::strcmp(argv[1], quorate::Version()) != 0) {
    std::cerr << "consumer: expected version " << argv[1] << ", linked "
              << quorate::Version() << "\n";
    return 1;
  }
  // The election, lock and shard group APIs are installed and link.
  auto* volatile lock = &quorate::Lock::Create;
  auto* volatile observe = &quorate::ObserveElection;
  auto* volatile join = &quorate::ShardGroup::Join;
  if (lock == nullptr || observe == nullptr || join == nullptr) return 1;
  return info.dependencies.empty() ? 1 : 0;
}
