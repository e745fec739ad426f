// runtime.h: what every process of the email example needs around its
// work: a stop on SIGINT/SIGTERM, and log lines on stderr.
#ifndef QUORATE_EMAIL_RUNTIME_H_
#define QUORATE_EMAIL_RUNTIME_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace quorate_email {

// Blocks SIGINT and SIGTERM in the calling thread (call it first in main,
// before any thread starts, so every thread inherits the mask) and starts
// a thread that waits for them.
void InstallStopSignals();
// True once SIGINT or SIGTERM arrived.
bool StopRequested();
// Waits up to `limit` for a stop; true if one came.
bool WaitForStop(absl::Duration limit);

// One line on stderr: "<program> <time> <text>".
void Log(absl::string_view text);
void SetLogName(absl::string_view name);

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_RUNTIME_H_
