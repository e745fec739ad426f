#include "quorate/version.h"

#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>

namespace quorate {

const char* Version() { return QUORATE_VERSION; }

BuildInfo GetBuildInfo() {
  BuildInfo info;
  info.version = Version();
  info.dependencies.emplace_back(
      "protobuf",
      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION));
  info.dependencies.emplace_back("grpc", grpc::Version());
  return info;
}

}  // namespace quorate
