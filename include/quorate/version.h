// quorate/version.h: which Quorate a program is linked with.
//
// Operators put this in logs and in /status so that a mixed-version cluster
// can be recognised at a glance.
//
//   #include "quorate/version.h"
//   std::cout << "quorate " << quorate::Version() << "\n";
//   for (const auto& [name, version] : quorate::GetBuildInfo().dependencies)
//     std::cout << "  " << name << " " << version << "\n";
#ifndef QUORATE_VERSION_H_
#define QUORATE_VERSION_H_

#include <string>
#include <utility>
#include <vector>

namespace quorate {

// The library's version, "MAJOR.MINOR.PATCH". Same as the CMake package
// version and the pkg-config version.
const char* Version();

struct BuildInfo {
  std::string version;
  // The versions of the libraries Quorate was built against that matter on
  // the wire or on disk, as (name, version) pairs: "protobuf", "grpc".
  std::vector<std::pair<std::string, std::string>> dependencies;
};

BuildInfo GetBuildInfo();

}  // namespace quorate

#endif  // QUORATE_VERSION_H_
