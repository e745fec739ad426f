#include "util/check.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace quorate::internal {

CheckFailure::CheckFailure(const char* file, int line, const char* condition) {
  stream_ << file << ":" << line << ": check failed: " << condition << " ";
}

CheckFailure::~CheckFailure() {
  std::string message = stream_.str();
  message += "\n";
  // One write, so that concurrent failures do not interleave mid-line.
  std::fwrite(message.data(), 1, message.size(), stderr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace quorate::internal
