// email-sink: the smarthost of the demo and the tests. An SMTP server that
// appends one JSON object per received message to --out:
//   {"t_mono_ns": N, "message_id": "...", "from": "...", "to": ["..."],
//    "in_reply_to": "..."}
// The line is written (one write(2), O_APPEND) before DATA is answered
// 250, so every message a sender saw accepted is in the file.
//
// Told to stall: while the file --stall_file names exists, it holds its
// answer to every DATA (the sender waits, and its deadline runs); with
// --stall_mode=silent it says nothing at all instead, no greeting and no
// reply, on new connections and open ones alike: a smarthost that accepts
// TCP and never answers (the outbound flood's replay).
//
//   email-sink --listen=HOST:PORT --out=FILE [--stall_file=PATH]
//              [--stall_mode=data|silent]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/db.h"
#include "lib/message.h"
#include "lib/runtime.h"
#include "lib/smtp_server.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "HOST:PORT to accept SMTP on");
ABSL_FLAG(std::string, out, "", "the file to append one line per message to");
ABSL_FLAG(std::string, stall_file, "",
          "while this file exists, hold every DATA's answer");
ABSL_FLAG(std::string, stall_mode, "data",
          "data: a stall holds DATA's answer; silent: it holds every answer, "
          "the greeting too");

namespace quorate_email {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0;
}

int Main() {
  InstallStopSignals();
  SetLogName("email-sink");
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    std::fprintf(stderr, "email-sink: --out is required\n");
    return 2;
  }
  int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(("email-sink: " + out).c_str());
    return 1;
  }
  std::string stall_file = absl::GetFlag(FLAGS_stall_file);
  std::atomic<int64_t> received{0};
  SmtpServerOptions o;
  o.listen = absl::GetFlag(FLAGS_listen);
  o.hostname = "email-sink";
  const std::string mode = absl::GetFlag(FLAGS_stall_mode);
  if (mode != "data" && mode != "silent") {
    std::fprintf(stderr, "email-sink: --stall_mode is data or silent\n");
    return 2;
  }
  std::atomic<bool> said_silent{false};
  if (mode == "silent") {
    o.hold = [&] {
      const bool hold = Exists(stall_file) && !StopRequested();
      if (hold && !said_silent.exchange(true)) {
        Log("stalled: silent until the stall file goes");
      }
      if (!hold) said_silent.store(false);
      return hold;
    };
  }
  auto deliver = [&](const Envelope& e) -> SmtpReply {
    bool said = false;
    while (mode == "data" && Exists(stall_file) && !StopRequested()) {
      if (!said) Log("stalled: holding a message until the stall file goes");
      said = true;
      WaitForStop(absl::Milliseconds(20));
    }
    std::string id;
    absl::StatusOr<std::vector<std::string>> ids =
        ParseIds(HeaderValue(e.data, "Message-ID"));
    if (ids.ok() && ids->size() == 1) id = (*ids)[0];
    std::string in_reply_to;
    absl::StatusOr<std::vector<std::string>> parents =
        ParseIds(HeaderValue(e.data, "In-Reply-To"));
    if (parents.ok() && !parents->empty()) in_reply_to = parents->back();
    std::string to;
    for (const std::string& t : e.to) {
      absl::StrAppend(&to, to.empty() ? "" : ", ", "\"", JsonEscape(t), "\"");
    }
    std::string line = absl::StrCat(
        "{\"t_mono_ns\": ", MonoNowNs(), ", \"message_id\": \"", JsonEscape(id),
        "\", \"from\": \"", JsonEscape(e.from), "\", \"to\": [", to,
        "], \"in_reply_to\": \"", JsonEscape(in_reply_to), "\"}\n");
    if (::write(fd, line.data(), line.size()) !=
        static_cast<ssize_t>(line.size())) {
      return {451, "4.3.0 cannot record the message"};
    }
    received.fetch_add(1);
    return {250, "2.0.0 recorded"};
  };
  absl::StatusOr<std::unique_ptr<SmtpServer>> server =
      SmtpServer::Start(o, deliver, nullptr);
  if (!server.ok()) {
    std::fprintf(stderr, "email-sink: %s\n",
                 server.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", (*server)->address().c_str());
  std::fflush(stdout);
  Log(absl::StrCat("recording to ", out, ", listening on ",
                   (*server)->address()));
  while (!WaitForStop(absl::Seconds(10))) {
  }
  (*server)->Stop();
  ::close(fd);
  Log(absl::StrCat("stopped; received ", received.load(), " messages"));
  return 0;
}

}  // namespace
}  // namespace quorate_email

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return quorate_email::Main();
}
