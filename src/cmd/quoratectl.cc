// quoratectl: the operator and script client (docs/contracts.md).
//
//   quoratectl --endpoints=HOST:PORT[,HOST:PORT...] [--timeout=2s] COMMAND
//     status                       one line per member
//     put KEY VALUE                prints the new revision
//     get KEY                      prints the value (--stale: local read)
//     del KEY                      prints the new revision
//     cas KEY EXPECTED_REV VALUE   prints the new revision
//
// Exit codes: 0 success; 1 refused (not found, CAS conflict, a value too
// large), one line on stderr says which; 2 usage error; 3 unavailable (no
// leader before the timeout; a write's outcome may be unknown).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cmd/flags.h"
#include "quorate/client.h"

namespace {

constexpr char kUsage[] =
    R"(usage: quoratectl --endpoints=HOST:PORT[,HOST:PORT...] [--timeout=2s] COMMAND
  status                       one line per member: id zone role term leader mode commit
  put KEY VALUE                prints the new revision
  get KEY [--stale]            prints the value; --stale reads local state
  del KEY                      prints the new revision
  cas KEY EXPECTED_REV VALUE   write only if KEY's revision is EXPECTED_REV
                               (0 = absent); prints the new revision
flags: --tls_ca, --tls_cert, --tls_key for mutual TLS
exit: 0 ok, 1 refused, 2 usage, 3 unavailable
)";

int Usage(const std::string& message) {
  fprintf(stderr, "quoratectl: %s\n(--help shows the usage)\n",
          message.c_str());
  return 2;
}

// Prints the error and maps it to the contract's exit code.
int Fail(const absl::Status& s) {
  fprintf(stderr, "quoratectl: %s: %s\n",
          std::string(absl::StatusCodeToString(s.code())).c_str(),
          std::string(s.message()).c_str());
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnknown:
      return 3;
    default:
      return 1;
  }
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
  }
  absl::StatusOr<quorate::cmd::Flags> parsed = quorate::cmd::ParseFlags(
      argc, argv, {"endpoints", "timeout", "tls_ca", "tls_cert", "tls_key"},
      {"stale"});
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  const quorate::cmd::Flags& flags = *parsed;
  const std::vector<std::string>& args = flags.positional;
  if (!flags.Has("endpoints") || flags.Get("endpoints").empty()) {
    return Usage("--endpoints is required");
  }
  if (args.empty()) return Usage("no command given");
  quorate::ClientOptions o;
  o.endpoints = absl::StrSplit(flags.Get("endpoints"), ',', absl::SkipEmpty());
  absl::StatusOr<absl::Duration> timeout =
      flags.Duration("timeout", absl::Seconds(2));
  if (!timeout.ok()) return Usage(std::string(timeout.status().message()));
  o.timeout = *timeout;
  o.tls = {flags.Get("tls_ca"), flags.Get("tls_cert"), flags.Get("tls_key")};

  const std::string& cmd = args[0];
  auto want = [&](size_t n) { return args.size() == n + 1; };
  if (!((cmd == "status" && want(0)) || (cmd == "put" && want(2)) ||
        (cmd == "get" && want(1)) || (cmd == "del" && want(1)) ||
        (cmd == "cas" && want(3)))) {
    return Usage(absl::StrCat("bad command or arguments: '",
                              absl::StrJoin(args, " "), "'"));
  }
  uint64_t expected = 0;
  if (cmd == "cas" && !absl::SimpleAtoi(args[2], &expected)) {
    return Usage(
        absl::StrCat("EXPECTED_REV '", args[2], "' is not a revision number"));
  }
  absl::StatusOr<std::unique_ptr<quorate::Client>> client =
      quorate::Client::Create(o);
  if (!client.ok()) return Usage(std::string(client.status().message()));
  quorate::Client& c = **client;

  if (cmd == "status") {
    absl::StatusOr<std::vector<quorate::ClusterMember>> members = c.Members();
    if (!members.ok()) return Fail(members.status());
    for (const quorate::ClusterMember& m : *members) {
      if (!m.error.ok()) {
        printf("%s - unreachable - - - -\n", m.id.c_str());
        continue;
      }
      printf("%s %s %s %llu %s %s %llu\n", m.id.c_str(), m.zone.c_str(),
             m.role.c_str(), static_cast<unsigned long long>(m.term),
             m.leader_id.empty() ? "-" : m.leader_id.c_str(),
             m.mode.empty() ? "-" : m.mode.c_str(),
             static_cast<unsigned long long>(m.commit_index));
    }
    return 0;
  }
  if (cmd == "get") {
    absl::StatusOr<quorate::KeyValue> kv = c.Get(args[1], flags.Bool("stale"));
    if (!kv.ok()) return Fail(kv.status());
    fwrite(kv->value.data(), 1, kv->value.size(), stdout);
    fputc('\n', stdout);
    return 0;
  }
  absl::StatusOr<uint64_t> revision;
  if (cmd == "put") {
    revision = c.Put(args[1], args[2]);
  } else if (cmd == "del") {
    revision = c.Delete(args[1]);
  } else {
    revision = c.CompareAndSet(args[1], expected, args[3]);
  }
  if (!revision.ok()) return Fail(revision.status());
  printf("%llu\n", static_cast<unsigned long long>(*revision));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
