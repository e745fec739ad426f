#include "util/log_time.h"

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace quorate {

std::string LogTime() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(),
                          absl::UTCTimeZone());
}

}  // namespace quorate
