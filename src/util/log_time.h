// util/log_time.h: the timestamp at the start of every log line.
#ifndef QUORATE_UTIL_LOG_TIME_H_
#define QUORATE_UTIL_LOG_TIME_H_

#include <string>

namespace quorate {

// The wall-clock time now, in UTC, to the millisecond:
// "2026-11-21T23:41:12.345Z". Wall time, so that operators can line logs
// up with other systems; under libfaketime it is the faked time.
std::string LogTime();

}  // namespace quorate

#endif  // QUORATE_UTIL_LOG_TIME_H_
