// quoratectl: the operator and script client (docs/contracts.md).
//
//   quoratectl --endpoints=HOST:PORT[,HOST:PORT...] [--timeout=2s] COMMAND
//     status                       one line per member
//     put KEY VALUE                prints the new revision
//     get KEY                      prints the value (--stale: local read)
//     get KEY --prefix [--limit=N] [--keys_only]
//                                  KEY then VALUE for each key, in key order
//     get KEY [--prefix] --rev=N   as it was at revision N
//     watch KEY [--prefix] [--rev=N] [--prev]
//                                  one line per event until interrupted:
//                                  "PUT KEY MOD_REVISION VALUE" or
//                                  "DELETE KEY MOD_REVISION"; --prev adds
//                                  "PREV KEY MOD_REVISION VALUE" after an
//                                  event whose key existed before
//     txn                          a transaction from stdin (format below)
//     del KEY                      prints the new revision
//     cas KEY EXPECTED_REV VALUE   prints the new revision
//     put KEY VALUE --lease=ID     attached to the lease (hex id)
//     lease grant TTL              prints the lease id (hex)
//     lease revoke ID
//     lease ttl ID [--keys]        "remaining_ms=N granted_ms=N" (then keys)
//     lease keepalive ID           "ID remaining_ms=N" per renewal, until
//                                  interrupted; exit 1 when the lease is gone,
//                                  3 when no leader renewed it in time
//     elect NAME VALUE [--ttl=D]   campaigns; "LEADER NAME VALUE TOKEN" once
//                                  it leads; holds until interrupted, then
//                                  resigns
//     elect --observe NAME         "LEADER NAME VALUE TOKEN" per change
//     lock NAME [--ttl=D] [-- COMMAND ARGS...]
//                                  "LOCKED NAME TOKEN" once held; runs
//                                  COMMAND with QUORATE_FENCE_NAME and
//                                  QUORATE_FENCE_TOKEN, releases when it
//                                  exits, exits with its status; without
//                                  one, holds until interrupted
//     pause WORKLOAD [--reason=TEXT], resume WORKLOAD
//     workloads                    "NAME running|paused REASON" per workload
//     snapshot status FILE         "revision=N keys=N bytes=N checksum=ok|bad"
//                                  of a snapshot file, read on its own
//
// Exit codes: 0 success; 1 refused (not found, CAS conflict, a value too
// large), one line on stderr says which; 2 usage error; 3 unavailable (no
// leader before the timeout; a write's outcome may be unknown).
//
// The transaction format (docs/operations.md): one line per compare or
// operation, each starting with the branch it belongs to; tokens are
// separated by spaces, and "quoted" (with \" and \\) when they hold spaces
// or are empty. Blank lines and lines starting with # are skipped.
//   if value|version|create|mod|lease KEY =|!=|<|> VALUE_OR_NUMBER
//   then|else put KEY VALUE
//   then|else del KEY [--prefix]
//   then|else get KEY [--prefix]
// Output: SUCCESS or FAILURE, then for each operation of the branch run:
// a put's revision, "deleted N", or a get's KEY and VALUE lines.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "cmd/flags.h"
#include "cmd/json_line.h"
#include "quorate/client.h"
#include "quorate/election.h"
#include "quorate/shards.h"
#include "quorate/workload.h"
#include "storage/storage.h"
#include "wire/client.pb.h"
#include "wire/peer.pb.h"

namespace {

constexpr char kUsage[] =
    R"(usage: quoratectl --endpoints=HOST:PORT[,HOST:PORT...] [--timeout=2s] COMMAND
  status                       one line per member: id zone role term leader
                               mode commit version
  put KEY VALUE                prints the new revision
  get KEY [--stale]            prints the value; --stale reads local state
  get KEY --prefix [--limit=N] [--keys_only] [--stale]
                               every key starting with KEY, in key order:
                               KEY then VALUE (KEY only with --keys_only)
  get KEY [--prefix] --rev=N   as the keys were at revision N
  watch KEY [--prefix] [--rev=N] [--prev]
                               one line per event until interrupted:
                               "PUT KEY MOD_REVISION VALUE" or
                               "DELETE KEY MOD_REVISION" (from revision N
                               on with --rev); --prev adds a line
                               "PREV KEY MOD_REVISION VALUE" after an event
                               whose key existed before. Exits 1 if the
                               watch ends (its revision left the history)
  txn                          reads a transaction from stdin (see
                               docs/operations.md); prints SUCCESS or FAILURE,
                               then each operation's result
  del KEY                      prints the new revision
  cas KEY EXPECTED_REV VALUE   write only if KEY's revision is EXPECTED_REV
                               (0 = absent); prints the new revision
  put KEY VALUE --lease=ID     the key goes when the lease ends
  lease grant TTL              TTL like 10s; prints the lease id (hex)
  lease revoke ID              ends the lease, deleting its keys
  lease ttl ID [--keys]        "remaining_ms=N granted_ms=N", then with
                               --keys one attached key per line
  lease keepalive ID           renews until interrupted, one line
                               "ID remaining_ms=N" per renewal; exits 1
                               when the lease is gone, 3 when no leader
                               renewed it in time
  elect NAME VALUE [--ttl=D]   campaigns in election NAME (session TTL D,
                               default 10s); prints "LEADER NAME VALUE TOKEN"
                               once it leads; holds until interrupted, then
                               resigns; exits 1 if it loses leadership
  elect --observe NAME         one line "LEADER NAME VALUE TOKEN" per change
                               of leader (or of its value), in order
  lock NAME [--ttl=D] [-- COMMAND ARGS...]
                               waits for lock NAME, prints "LOCKED NAME
                               TOKEN"; with a command, runs it with
                               QUORATE_FENCE_NAME and QUORATE_FENCE_TOKEN
                               set, releases when it exits and exits with
                               its status (the command gets SIGTERM if the
                               lock is lost first: exit 1); without one,
                               holds until interrupted
  shards create GROUP COUNT [--max_processors=N] [--max_in_motion=K]
                     [--drain=D]
                               creates shard group GROUP of COUNT shards (a
                               group with the same shape is no error)
  shards GROUP                 one line per shard: "SHARD OWNER ZONE EPOCH
                               STATE" (OWNER a lease in hex, "-" for none;
                               STATE owned, draining or unowned)
  shards join GROUP [--zone=Z] [--weight=W] [--ttl=D]
                               a processor (session TTL D, default 10s):
                               prints "ASSIGNED SHARD EPOCH" and "REVOKED
                               SHARD" as they come, releases what is revoked
                               at once; on interrupt leaves the group, waits
                               for its shards to drain (10 s at most) and
                               exits 0; exits 1 if its session ends first
  pause WORKLOAD [--reason=TEXT]
                               turns the workload's switch off: every
                               WorkloadSwitch of that name stops Running()
  resume WORKLOAD              turns it on again
  workloads                    one line per workload: "NAME running|paused REASON"
  member list                  one line per member of the configuration:
                               "ID ZONE ADDRESS voter|learner VERSION"
                               (VERSION "-" when not known)
  member add ID ZONE HOST:PORT [--learner]
                               adds a member (start it with quorate-node
                               --join); prints "added ID INDEX"
  member remove ID             removes a member (the leader hands over
                               first); prints "removed ID INDEX"
  member promote ID            makes a caught-up learner a voter; prints
                               "promoted ID INDEX"
  transfer [ID]                hands leadership to voter ID (or the most
                               up-to-date one); prints "LEADER ID"
                               (member and transfer commands wait up to
                               --timeout, 10s by default for them)
  snapshot save FILE           a consistent snapshot from a member, written
                               to FILE and checked; prints "saved FILE
                               index=N bytes=N"
  snapshot status FILE         reads a snapshot file (a member's
                               DATA_DIR/snap-*.snap), no --endpoints:
                               "revision=N keys=N bytes=N checksum=ok|bad"
                               then "index=N term=N cluster_id=ID members=N";
                               exits 1 ("-" for what it cannot say) when a
                               checksum is bad or the data is not a
                               member's snapshot
flags: --tls_ca, --tls_cert, --tls_key for mutual TLS
       --output=json: every line of output is a JSON object instead (keys
       and values that are not UTF-8 as NAME_base64); errors also as
       {"error": {"code": ..., "message": ...}}
exit: 0 ok, 1 refused, 2 usage, 3 unavailable
)";

using quorate::cmd::JsonLine;

// --output=json: every line of output is a JSON object instead.
bool json = false;

int Usage(const std::string& message) {
  fprintf(stderr, "quoratectl: %s\n(--help shows the usage)\n",
          message.c_str());
  return 2;
}

// Prints the error and maps it to the contract's exit code. With
// --output=json, also {"error": {"code": ..., "message": ...}} on standard
// output.
int Fail(const absl::Status& s) {
  fprintf(stderr, "quoratectl: %s: %s\n",
          std::string(absl::StatusCodeToString(s.code())).c_str(),
          std::string(s.message()).c_str());
  if (json) {
    JsonLine()
        .Object("error", JsonLine()
                             .Str("code", absl::StatusCodeToString(s.code()))
                             .Str("message", s.message()))
        .Print();
  }
  switch (s.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kUnknown:
      return 3;
    default:
      return 1;
  }
}

// `snapshot status FILE`: a snapshot file read on its own (both of its
// checksums, then the state it holds), without asking any member. The data
// is a member's snapshot (peer::NodeSnapshot) around the key-value state
// (client::KvSnapshot).
int SnapshotStatus(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Usage(absl::StrCat("snapshot file '", path,
                              "': ", ec ? ec.message() : "not a regular file"));
  }
  absl::StatusOr<std::string> read =
      quorate::storage::PosixFileSystem()->ReadFile(path);
  if (!read.ok()) {
    return Usage(absl::StrCat("cannot read snapshot file '", path,
                              "': ", read.status().message()));
  }
  const std::string& contents = *read;
  absl::StatusOr<quorate::storage::SnapshotFile> file =
      quorate::storage::ReadSnapshotFile(contents);
  quorate::peer::NodeSnapshot node;
  quorate::client::KvSnapshot kv;
  if (!file.ok()) {
    if (json) {
      JsonLine()
          .Unsigned("bytes", contents.size())
          .Str("checksum", "bad")
          .Str("error", file.status().message())
          .Print();
      return 1;
    }
    printf("revision=- keys=- bytes=%zu checksum=bad\n", contents.size());
    fflush(stdout);  // the line first, then why
    fprintf(stderr, "quoratectl: snapshot '%s': %s\n", path.c_str(),
            std::string(file.status().message()).c_str());
    return 1;
  }
  if (!node.ParseFromArray(
          contents.data() + file->data_offset,
          static_cast<int>(contents.size() - file->data_offset)) ||
      !kv.ParseFromString(node.state())) {
    if (json) {
      JsonLine()
          .Unsigned("bytes", contents.size())
          .Str("checksum", "ok")
          .Str("error", "not a member's snapshot")
          .Print();
      return 1;
    }
    printf("revision=- keys=- bytes=%zu checksum=ok\n", contents.size());
    fflush(stdout);
    fprintf(stderr,
            "quoratectl: snapshot '%s': its checksums hold, but its data is "
            "not a member's snapshot\n",
            path.c_str());
    return 1;
  }
  if (json) {
    JsonLine()
        .Unsigned("revision", kv.revision())
        .Num("keys", kv.entries_size())
        .Unsigned("bytes", contents.size())
        .Str("checksum", "ok")
        .Unsigned("index", file->header.metadata().index())
        .Unsigned("term", file->header.metadata().term())
        .Str("cluster_id", file->header.cluster_id())
        .Num("members", node.members_size())
        .Print();
    return 0;
  }
  printf("revision=%llu keys=%d bytes=%zu checksum=ok\n",
         static_cast<unsigned long long>(kv.revision()), kv.entries_size(),
         contents.size());
  // Where it sits in the log, and whose it is (a restore checks these).
  printf("index=%llu term=%llu cluster_id=%s members=%d\n",
         static_cast<unsigned long long>(file->header.metadata().index()),
         static_cast<unsigned long long>(file->header.metadata().term()),
         file->header.cluster_id().c_str(), node.members_size());
  return 0;
}

// `member list|add|remove|promote` and `transfer`.
int Membership(quorate::Client& c, const std::vector<std::string>& args,
               const quorate::cmd::Flags& flags) {
  if (args[0] == "transfer") {
    absl::StatusOr<std::string> leader =
        c.TransferLeadership(args.size() > 1 ? args[1] : "");
    if (!leader.ok()) return Fail(leader.status());
    if (json) {
      JsonLine().Str("leader", *leader).Print();
    } else {
      printf("LEADER %s\n", leader->c_str());
    }
    return 0;
  }
  const std::string& sub = args[1];
  if (sub == "list") {
    absl::StatusOr<quorate::Configuration> conf = c.MemberList();
    if (!conf.ok()) return Fail(conf.status());
    for (const quorate::ConfigMember& m : conf->members) {
      if (json) {
        JsonLine line;
        line.Str("id", m.id)
            .Str("zone", m.zone)
            .Str("address", m.address)
            .Str("role", m.voter ? "voter" : "learner")
            .Str("version", m.version)
            .Bool("leader", m.id == conf->leader);
        // What only the leader knows.
        if (conf->from_leader) {
          line.Unsigned("match_index", m.match_index)
              .Bool("caught_up", m.caught_up);
        }
        line.Print();
        continue;
      }
      printf("%s %s %s %s %s\n", m.id.c_str(), m.zone.c_str(),
             m.address.c_str(), m.voter ? "voter" : "learner",
             m.version.empty() ? "-" : m.version.c_str());
    }
    return 0;
  }
  quorate::MemberChange change = quorate::MemberChange::kRemove;
  const char* done = "removed";
  if (sub == "add") {
    change = flags.Bool("learner") ? quorate::MemberChange::kAddLearner
                                   : quorate::MemberChange::kAdd;
    done = "added";
  } else if (sub == "promote") {
    change = quorate::MemberChange::kPromote;
    done = "promoted";
  }
  absl::StatusOr<uint64_t> index =
      sub == "add" ? c.ChangeMember(change, args[2], args[3], args[4])
                   : c.ChangeMember(change, args[2]);
  if (!index.ok()) return Fail(index.status());
  if (json) {
    JsonLine().Str(done, args[2]).Unsigned("index", *index).Print();
    return 0;
  }
  printf("%s %s %llu\n", done, args[2].c_str(),
         static_cast<unsigned long long>(*index));
  return 0;
}

// Splits a line into tokens: spaces separate them; "..." quotes one, with
// \" and \\ inside. An unterminated quote is an error.
absl::StatusOr<std::vector<std::string>> Tokens(absl::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t') {
      ++i;
      continue;
    }
    std::string token;
    if (line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        const char ch = line[i++];
        if (ch == '"') {
          closed = true;
          break;
        }
        if (ch == '\\' && i < line.size()) {
          token.push_back(line[i++]);
        } else {
          token.push_back(ch);
        }
      }
      if (!closed) return absl::InvalidArgumentError("a quote is not closed");
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') {
        token.push_back(line[i++]);
      }
    }
    out.push_back(std::move(token));
  }
  return out;
}

// Reads the transaction format above; the error names the line.
absl::StatusOr<quorate::Transaction> ParseTxn(std::istream& in) {
  quorate::Transaction txn;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", n, ": ", why, ": '", line, "'"));
    };
    absl::StatusOr<std::vector<std::string>> t = Tokens(line);
    if (!t.ok()) return bad(t.status().message());
    if (t->empty() || (*t)[0][0] == '#') continue;
    const std::vector<std::string>& w = *t;
    if (w[0] == "if") {
      if (w.size() != 5) return bad("a compare is: if TARGET KEY OP VALUE");
      using quorate::Compare;
      Compare::Op op;
      if (w[3] == "=") {
        op = Compare::Op::kEqual;
      } else if (w[3] == "!=") {
        op = Compare::Op::kNotEqual;
      } else if (w[3] == "<") {
        op = Compare::Op::kLess;
      } else if (w[3] == ">") {
        op = Compare::Op::kGreater;
      } else {
        return bad("the operator is one of = != < >");
      }
      if (w[1] == "value") {
        txn.compare.push_back(Compare::Value(w[2], op, w[4]));
        continue;
      }
      int64_t number = 0;
      if (!absl::SimpleAtoi(w[4], &number)) return bad("not a number");
      if (w[1] == "version") {
        txn.compare.push_back(Compare::Version(w[2], op, number));
      } else if (w[1] == "create") {
        txn.compare.push_back(Compare::CreateRevision(w[2], op, number));
      } else if (w[1] == "mod") {
        txn.compare.push_back(Compare::ModRevision(w[2], op, number));
      } else if (w[1] == "lease") {
        txn.compare.push_back(Compare::Lease(w[2], op, number));
      } else {
        return bad("the target is one of value version create mod lease");
      }
      continue;
    }
    if (w[0] != "then" && w[0] != "else") {
      return bad("a line starts with if, then or else");
    }
    std::vector<quorate::TxnOp>& branch =
        w[0] == "then" ? txn.success : txn.failure;
    const bool prefix = w.size() == 4 && w[3] == "--prefix";
    if (w.size() == 4 && w[1] == "put") {
      branch.push_back(quorate::TxnOp::Put(w[2], w[3]));
    } else if ((w.size() == 3 || prefix) && w[1] == "del") {
      branch.push_back(
          quorate::TxnOp::Delete(w[2], prefix ? quorate::PrefixEnd(w[2]) : ""));
    } else if ((w.size() == 3 || prefix) && w[1] == "get") {
      quorate::RangeOptions o;
      if (prefix) o.range_end = quorate::PrefixEnd(w[2]);
      branch.push_back(quorate::TxnOp::Range(w[2], o));
    } else {
      return bad(
          "an operation is: put KEY VALUE, del KEY [--prefix] or "
          "get KEY [--prefix]");
    }
  }
  return txn;
}

void PrintKeys(const std::vector<quorate::KeyRecord>& kvs, bool keys_only) {
  for (const quorate::KeyRecord& kv : kvs) {
    if (json) {
      JsonLine line;
      line.Str("key", kv.key);
      if (!keys_only) line.Str("value", kv.value);
      line.Unsigned("mod_revision", kv.mod_revision).Print();
      continue;
    }
    fwrite(kv.key.data(), 1, kv.key.size(), stdout);
    fputc('\n', stdout);
    if (keys_only) continue;
    fwrite(kv.value.data(), 1, kv.value.size(), stdout);
    fputc('\n', stdout);
  }
}

// A lease id as printed: lowercase hex (docs/contracts.md).
bool ParseLeaseId(const std::string& text, uint64_t* id) {
  return !text.empty() && text.size() <= 16 && absl::SimpleHexAtoi(text, id) &&
         *id != 0;
}

volatile std::sig_atomic_t interrupted = 0;

void OnInterrupt() {
  std::signal(SIGINT, [](int) { interrupted = 1; });
  std::signal(SIGTERM, [](int) { interrupted = 1; });
}

// Waits until interrupted (0), or until `done` is ready: its status's exit
// code.
int UntilInterrupted(const std::shared_future<absl::Status>& done);

int Lease(quorate::Client& c, const std::vector<std::string>& args,
          const quorate::cmd::Flags& flags) {
  const std::string& sub = args[1];
  if (sub == "grant") {
    absl::Duration ttl;
    if (!absl::ParseDuration(args[2], &ttl) || ttl <= absl::ZeroDuration()) {
      return Usage(absl::StrCat("TTL '", args[2],
                                "' is not a duration such as 10s or 750ms"));
    }
    absl::StatusOr<quorate::LeaseGrant> g = c.GrantLease(ttl);
    if (!g.ok()) return Fail(g.status());
    if (json) {
      JsonLine()
          .Str("lease", absl::StrFormat("%x", g->id))
          .Num("ttl_ms", absl::ToInt64Milliseconds(g->ttl))
          .Print();
      return 0;
    }
    printf("%s\n", absl::StrFormat("%x", g->id).c_str());
    return 0;
  }
  uint64_t id = 0;
  if (!ParseLeaseId(args[2], &id)) {
    return Usage(absl::StrCat("lease id '", args[2],
                              "' is not a lease id (lowercase hex)"));
  }
  if (sub == "revoke") {
    absl::Status s = c.RevokeLease(id);
    if (s.ok() && json) JsonLine().Str("revoked", args[2]).Print();
    return s.ok() ? 0 : Fail(s);
  }
  if (sub == "ttl") {
    absl::StatusOr<quorate::LeaseStatus> t =
        c.LeaseTimeToLive(id, flags.Bool("keys"));
    if (!t.ok()) return Fail(t.status());
    if (json) {
      JsonLine line;
      line.Str("lease", args[2])
          .Num("remaining_ms", absl::ToInt64Milliseconds(t->remaining))
          .Num("granted_ms", absl::ToInt64Milliseconds(t->granted_ttl));
      if (flags.Bool("keys")) line.Strs("keys", t->keys);
      line.Print();
      return 0;
    }
    printf("remaining_ms=%lld granted_ms=%lld\n",
           static_cast<long long>(absl::ToInt64Milliseconds(t->remaining)),
           static_cast<long long>(absl::ToInt64Milliseconds(t->granted_ttl)));
    for (const std::string& key : t->keys) {
      fwrite(key.data(), 1, key.size(), stdout);
      fputc('\n', stdout);
    }
    return 0;
  }
  // keepalive
  quorate::SessionOptions so;
  const std::string hex = args[2];
  so.on_renewed = [hex](absl::Duration left) {
    if (json) {
      JsonLine()
          .Str("lease", hex)
          .Num("remaining_ms", absl::ToInt64Milliseconds(left))
          .Print();
      return;
    }
    printf("%s remaining_ms=%lld\n", hex.c_str(),
           static_cast<long long>(absl::ToInt64Milliseconds(left)));
    fflush(stdout);
  };
  absl::StatusOr<std::unique_ptr<quorate::Session>> session =
      c.AdoptSession(id, so);
  if (!session.ok()) return Fail(session.status());
  OnInterrupt();
  std::shared_future<void> done = (*session)->Done();
  while (!interrupted) {
    if (done.wait_for(std::chrono::milliseconds(50)) ==
        std::future_status::ready) {
      // Gone (1), or renewals failed until the session's deadline: the
      // lease may live on, and no leader answered (3, unavailable).
      absl::StatusOr<quorate::LeaseStatus> t = c.LeaseTimeToLive(id, false);
      if (absl::IsNotFound(t.status())) {
        fprintf(stderr, "quoratectl: lease %s is gone\n", hex.c_str());
        return 1;
      }
      return Fail(absl::UnavailableError(absl::StrCat(
          "lease ", hex, " could not be renewed before its deadline",
          t.ok() ? "" : absl::StrCat(" (", t.status().message(), ")"))));
    }
  }
  return 0;  // interrupted: the lease is left to expire (or be renewed)
}

// watch: prints events until interrupted (0), or until the watch ends
// (1: its next revision left the history).
int Watch(quorate::Client& c, const std::string& key, bool prefix, uint64_t rev,
          bool prev) {
  quorate::WatchOptions w;
  if (prefix) w.range_end = quorate::PrefixEnd(key);
  w.start_revision = rev;
  w.prev_kv = prev;
  auto print = [](const char* kind, const quorate::KeyRecord& kv, bool value) {
    if (json) {
      JsonLine line;
      line.Str("type", kind).Str("key", kv.key);
      line.Unsigned("mod_revision", kv.mod_revision);
      if (value) line.Str("value", kv.value);
      line.Print();
      return;
    }
    printf("%s ", kind);
    fwrite(kv.key.data(), 1, kv.key.size(), stdout);
    printf(" %llu", static_cast<unsigned long long>(kv.mod_revision));
    if (value) {
      fputc(' ', stdout);
      fwrite(kv.value.data(), 1, kv.value.size(), stdout);
    }
    fputc('\n', stdout);
  };
  w.on_events = [&print](const std::vector<quorate::WatchEvent>& events,
                         uint64_t) {
    for (const quorate::WatchEvent& e : events) {
      const bool put = e.type == quorate::WatchEvent::Type::kPut;
      print(put ? "PUT" : "DELETE", e.kv, put);
      if (e.prev.has_value()) print("PREV", *e.prev, true);
    }
    fflush(stdout);
  };
  absl::StatusOr<std::unique_ptr<quorate::Watcher>> watcher =
      c.Watch(key, std::move(w));
  if (!watcher.ok()) return Fail(watcher.status());
  OnInterrupt();
  return UntilInterrupted((*watcher)->Done());
}

int UntilInterrupted(const std::shared_future<absl::Status>& done) {
  while (!interrupted) {
    if (done.wait_for(std::chrono::milliseconds(50)) ==
        std::future_status::ready) {
      return Fail(done.get());
    }
  }
  return 0;
}

// Runs `campaign` (without a timeout: a campaign that times out is
// withdrawn, and would lose its place in line) on a thread of its own
// until it succeeds (-1) or fails (the exit code). An interrupt ends the
// session, which ends the campaign (its key goes with the lease), and
// exits 0.
int UntilWon(quorate::Session& session,
             const std::function<absl::Status()>& campaign) {
  std::future<absl::Status> won = std::async(std::launch::async, campaign);
  while (won.wait_for(std::chrono::milliseconds(20)) !=
         std::future_status::ready) {
    if (interrupted) {
      (void)session.Close();
      (void)won.get();
      return 0;
    }
  }
  const absl::Status s = won.get();
  return s.ok() ? -1 : Fail(s);
}

void PrintLeader(const std::string& name, const quorate::LeaderInfo& l) {
  if (json) {
    JsonLine()
        .Str("election", name)
        .Str("value", l.value)
        .Unsigned("token", l.token)
        .Print();
    return;
  }
  printf("LEADER %s %s %llu\n", name.c_str(), l.value.c_str(),
         static_cast<unsigned long long>(l.token));
  fflush(stdout);
}

absl::StatusOr<std::unique_ptr<quorate::Session>> HoldSession(
    quorate::Client& c, absl::Duration ttl) {
  quorate::SessionOptions so;
  so.ttl = ttl;
  return c.StartSession(so);
}

// elect NAME VALUE: leads until interrupted (0), or until leadership is
// lost (1).
int Elect(quorate::Client& c, const std::string& name, const std::string& value,
          absl::Duration ttl) {
  absl::StatusOr<std::unique_ptr<quorate::Session>> session =
      HoldSession(c, ttl);
  if (!session.ok()) return Fail(session.status());
  absl::StatusOr<std::unique_ptr<quorate::Election>> e =
      quorate::Election::Create(&c, session->get(), name);
  if (!e.ok()) return Usage(std::string(e.status().message()));
  OnInterrupt();
  if (const int exit =
          UntilWon(**session, [&] { return (*e)->Campaign(value); });
      exit >= 0) {
    return exit;
  }
  uint64_t token = 0;
  (*e)->IsLeader(&token);
  PrintLeader(name, quorate::LeaderInfo{value, token, (*session)->lease(), ""});
  while (!interrupted) {
    if (!(*e)->IsLeader()) {
      return Fail(absl::FailedPreconditionError(
          absl::StrCat("lost the leadership of '", name,
                       "': the session ended or the key was deleted")));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Status s = (*e)->Resign();
  return s.ok() ? 0 : Fail(s);
}

int Observe(quorate::Client& c, const std::string& name) {
  quorate::ObserveOptions o;
  o.on_leader = [name](const std::optional<quorate::LeaderInfo>& l) {
    if (l.has_value()) PrintLeader(name, *l);
  };
  absl::StatusOr<std::unique_ptr<quorate::Watcher>> w =
      quorate::ObserveElection(&c, name, std::move(o));
  if (absl::IsInvalidArgument(w.status())) {
    return Usage(std::string(w.status().message()));
  }
  if (!w.ok()) return Fail(w.status());
  OnInterrupt();
  return UntilInterrupted((*w)->Done());
}

// lock NAME [-- COMMAND...]: see the usage.
int LockCommand(quorate::Client& c, const std::string& name,
                const std::vector<std::string>& command, absl::Duration ttl) {
  absl::StatusOr<std::unique_ptr<quorate::Session>> session =
      HoldSession(c, ttl);
  if (!session.ok()) return Fail(session.status());
  absl::StatusOr<std::unique_ptr<quorate::Lock>> lock =
      quorate::Lock::Create(&c, session->get(), name);
  if (!lock.ok()) return Usage(std::string(lock.status().message()));
  OnInterrupt();
  if (const int exit = UntilWon(**session, [&] { return (*lock)->Acquire(); });
      exit >= 0) {
    return exit;
  }
  uint64_t token = 0;
  (*lock)->Held(&token);
  if (json) {
    JsonLine().Str("locked", name).Unsigned("token", token).Print();
  } else {
    printf("LOCKED %s %llu\n", name.c_str(),
           static_cast<unsigned long long>(token));
    fflush(stdout);
  }
  int status = 0;
  bool lost = false;
  if (command.empty()) {
    while (!interrupted && !lost) {
      lost = !(*lock)->Held();
      absl::SleepFor(absl::Milliseconds(20));
    }
  } else {
    const std::string fence = (*lock)->fence_name();
    const std::string tok = absl::StrCat(token);
    const pid_t child = fork();
    if (child < 0) return Fail(absl::InternalError("fork failed"));
    if (child == 0) {
      setenv("QUORATE_FENCE_NAME", fence.c_str(), 1);
      setenv("QUORATE_FENCE_TOKEN", tok.c_str(), 1);
      std::vector<char*> argv;
      for (const std::string& a : command) {
        argv.push_back(const_cast<char*>(a.c_str()));
      }
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      fprintf(stderr, "quoratectl: cannot run '%s'\n", argv[0]);
      _exit(127);
    }
    // The lock is checked while the command runs: if it is lost (the
    // session ended), the command is told to stop (SIGTERM) at once.
    bool signalled = false;
    while (true) {
      int ws = 0;
      const pid_t r = waitpid(child, &ws, WNOHANG);
      if (r == child) {
        status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
        break;
      }
      if (!signalled && (interrupted || !(*lock)->Held())) {
        lost = !(*lock)->Held();
        kill(child, SIGTERM);
        signalled = true;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  const absl::Status released = (*lock)->Release();
  if (lost) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "lost lock '", name, "': its session ended before the command did")));
  }
  if (!released.ok()) return Fail(released);
  return status;
}

// `shards join GROUP`: see the usage.
int ShardJoin(quorate::Client& c, const std::string& group,
              const quorate::cmd::Flags& flags, absl::Duration ttl) {
  quorate::ShardGroupOptions o;
  o.zone = flags.Get("zone");
  if (flags.Has("weight") &&
      !absl::SimpleAtoi(flags.Get("weight"), &o.weight)) {
    return Usage(
        absl::StrCat("--weight='", flags.Get("weight"), "' is not a number"));
  }
  absl::StatusOr<std::unique_ptr<quorate::Session>> session =
      HoldSession(c, ttl);
  if (!session.ok()) return Fail(session.status());
  std::atomic<quorate::ShardGroup*> self{nullptr};
  std::atomic<bool> lost{false};
  o.on_assigned = [](uint32_t shard, uint64_t epoch) {
    if (json) {
      JsonLine().Unsigned("assigned", shard).Unsigned("epoch", epoch).Print();
      return;
    }
    printf("ASSIGNED %u %llu\n", shard, static_cast<unsigned long long>(epoch));
    fflush(stdout);
  };
  o.on_revoke = [&self](uint32_t shard) {
    if (json) {
      JsonLine().Unsigned("revoked", shard).Print();
    } else {
      printf("REVOKED %u\n", shard);
      fflush(stdout);
    }
    if (quorate::ShardGroup* g = self.load()) (void)g->Release(shard);
  };
  o.on_lost = [&lost] { lost = true; };
  absl::StatusOr<std::unique_ptr<quorate::ShardGroup>> g =
      quorate::ShardGroup::Join(&c, session->get(), group, std::move(o));
  if (absl::IsInvalidArgument(g.status())) {
    return Usage(std::string(g.status().message()));
  }
  if (!g.ok()) return Fail(g.status());
  self = g->get();
  OnInterrupt();
  while (!interrupted && !lost) absl::SleepFor(absl::Milliseconds(20));
  if (lost) {
    return Fail(absl::FailedPreconditionError(
        absl::StrCat("left shard group '", group, "': the session ended")));
  }
  if (const absl::Status s = (*g)->Leave(); !s.ok()) return Fail(s);
  const absl::Time until = absl::Now() + absl::Seconds(10);
  while (!(*g)->Owned().empty() && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  self = nullptr;
  const absl::Status closed = (*session)->Close();
  return closed.ok() ? 0 : Fail(closed);
}

// `shards create GROUP COUNT`, `shards GROUP` and `shards join GROUP`.
int Shards(quorate::Client& c, const std::vector<std::string>& args,
           const quorate::cmd::Flags& flags, absl::Duration ttl) {
  if (args.size() == 3) return ShardJoin(c, args[2], flags, ttl);
  if (args.size() == 4) {
    uint32_t count = 0;
    if (!absl::SimpleAtoi(args[3], &count)) {
      return Usage(absl::StrCat("'", args[3], "' is not a number of shards"));
    }
    quorate::ShardGroupLimits limits;
    for (const auto& [name, field] :
         {std::pair{"max_processors", &limits.max_processors},
          std::pair{"max_in_motion", &limits.max_in_motion}}) {
      if (flags.Has(name) && !absl::SimpleAtoi(flags.Get(name), field)) {
        return Usage(absl::StrCat("--", name, "='", flags.Get(name),
                                  "' is not a number"));
      }
    }
    absl::StatusOr<absl::Duration> drain =
        flags.Duration("drain", absl::ZeroDuration());
    if (!drain.ok()) return Usage(std::string(drain.status().message()));
    limits.drain = *drain;
    const absl::Status s =
        quorate::CreateShardGroup(&c, args[2], count, limits);
    if (absl::IsInvalidArgument(s)) return Usage(std::string(s.message()));
    if (s.ok() && json) {
      JsonLine().Str("created", args[2]).Unsigned("shards", count).Print();
    }
    return s.ok() ? 0 : Fail(s);
  }
  absl::StatusOr<std::vector<quorate::ShardInfo>> shards =
      quorate::ListShards(&c, args[1]);
  if (absl::IsInvalidArgument(shards.status())) {
    return Usage(std::string(shards.status().message()));
  }
  if (!shards.ok()) return Fail(shards.status());
  for (const quorate::ShardInfo& s : *shards) {
    if (json) {
      JsonLine()
          .Unsigned("shard", s.shard)
          .Str("owner", s.owner == 0 ? "" : absl::StrFormat("%x", s.owner))
          .Str("zone", s.zone)
          .Unsigned("epoch", s.epoch)
          .Str("state", s.state)
          .Print();
      continue;
    }
    printf("%u %s %s %llu %s\n", s.shard,
           s.owner == 0 ? "-" : absl::StrFormat("%x", s.owner).c_str(),
           s.zone.empty() ? "-" : s.zone.c_str(),
           static_cast<unsigned long long>(s.epoch), s.state.c_str());
  }
  return 0;
}

int Main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      fputs(kUsage, stdout);
      return 0;
    }
  }
  absl::StatusOr<quorate::cmd::Flags> parsed = quorate::cmd::ParseFlags(
      argc, argv,
      {"endpoints", "timeout", "tls_ca", "tls_cert", "tls_key", "limit",
       "lease", "rev", "ttl", "reason", "max_processors", "max_in_motion",
       "drain", "zone", "weight", "output"},
      {"stale", "prefix", "keys_only", "keys", "prev", "observe", "learner"});
  if (!parsed.ok()) return Usage(std::string(parsed.status().message()));
  const quorate::cmd::Flags& flags = *parsed;
  const std::vector<std::string>& args = flags.positional;
  if (flags.Has("output")) {
    const std::string out = flags.Get("output");
    if (out != "json" && out != "text") {
      return Usage(absl::StrCat("--output='", out, "': json or text"));
    }
    json = out == "json";
  }
  // Read from a file, not from the cluster.
  if (!args.empty() && args[0] == "snapshot") {
    if (args.size() != 3 || (args[1] != "status" && args[1] != "save")) {
      return Usage(
          absl::StrCat("bad command or arguments: '", absl::StrJoin(args, " "),
                       "' (snapshot status FILE, snapshot save FILE)"));
    }
    if (args[1] == "status") return SnapshotStatus(args[2]);
  }
  if (!flags.Has("endpoints") || flags.Get("endpoints").empty()) {
    return Usage("--endpoints is required");
  }
  if (args.empty()) return Usage("no command given");
  quorate::ClientOptions o;
  o.endpoints = absl::StrSplit(flags.Get("endpoints"), ',', absl::SkipEmpty());
  // Membership changes and transfers wait for an election or two.
  const bool slow = args[0] == "member" || args[0] == "transfer";
  absl::StatusOr<absl::Duration> timeout =
      flags.Duration("timeout", slow ? absl::Seconds(10) : absl::Seconds(2));
  if (!timeout.ok()) return Usage(std::string(timeout.status().message()));
  o.timeout = *timeout;
  o.tls = {flags.Get("tls_ca"), flags.Get("tls_cert"), flags.Get("tls_key")};

  const std::string& cmd = args[0];
  auto want = [&](size_t n) { return args.size() == n + 1; };
  if (!((cmd == "status" && want(0)) || (cmd == "put" && want(2)) ||
        (cmd == "get" && want(1)) || (cmd == "del" && want(1)) ||
        (cmd == "cas" && want(3)) || (cmd == "txn" && want(0)) ||
        (cmd == "watch" && want(1)) ||
        (cmd == "elect" && want(flags.Bool("observe") ? 1 : 2)) ||
        (cmd == "pause" && want(1)) || (cmd == "resume" && want(1)) ||
        (cmd == "workloads" && want(0)) ||
        (cmd == "shards" && (want(1) || (want(3) && args[1] == "create") ||
                             (want(2) && args[1] == "join"))) ||
        (cmd == "lock" && flags.before_dash_dash == 2 &&
         (!flags.dash_dash || args.size() > 2)) ||
        (cmd == "member" && args.size() >= 2 &&
         ((args[1] == "list" && want(1)) || (args[1] == "add" && want(4)) ||
          ((args[1] == "remove" || args[1] == "promote") && want(2)))) ||
        (cmd == "transfer" && (want(0) || want(1))) ||
        (cmd == "snapshot" && want(2)) ||
        (cmd == "lease" && want(2) &&
         (args[1] == "grant" || args[1] == "revoke" || args[1] == "ttl" ||
          args[1] == "keepalive")))) {
    return Usage(absl::StrCat("bad command or arguments: '",
                              absl::StrJoin(args, " "), "'"));
  }
  uint64_t limit = 0;
  if (flags.Has("limit") && !absl::SimpleAtoi(flags.Get("limit"), &limit)) {
    return Usage(absl::StrCat("--limit='", flags.Get("limit"),
                              "' is not a number of keys"));
  }
  if ((flags.Has("limit") || flags.Bool("keys_only")) && cmd != "get") {
    return Usage("--limit and --keys_only go with get");
  }
  uint64_t rev = 0;
  if (flags.Has("rev") && (!absl::SimpleAtoi(flags.Get("rev"), &rev) ||
                           rev == 0 || (cmd != "get" && cmd != "watch"))) {
    return Usage(absl::StrCat("--rev='", flags.Get("rev"),
                              "' goes with get and watch and names a "
                              "revision (1 or more)"));
  }
  if (flags.Bool("prefix") && cmd != "get" && cmd != "watch") {
    return Usage("--prefix goes with get and watch");
  }
  if (flags.Bool("prev") && cmd != "watch") {
    return Usage("--prev goes with watch");
  }
  if (flags.Bool("learner") && !(cmd == "member" && args[1] == "add")) {
    return Usage("--learner goes with member add");
  }
  if (flags.Bool("observe") && cmd != "elect") {
    return Usage("--observe goes with elect");
  }
  if (flags.Has("reason") && cmd != "pause") {
    return Usage("--reason goes with pause");
  }
  const bool shard_join = cmd == "shards" && args.size() == 3;
  const bool shard_create = cmd == "shards" && args.size() == 4;
  if (flags.Has("ttl") && cmd != "elect" && cmd != "lock" && !shard_join) {
    return Usage("--ttl goes with elect, lock and shards join");
  }
  if ((flags.Has("zone") || flags.Has("weight")) && !shard_join) {
    return Usage("--zone and --weight go with shards join");
  }
  if ((flags.Has("max_processors") || flags.Has("max_in_motion") ||
       flags.Has("drain")) &&
      !shard_create) {
    return Usage(
        "--max_processors, --max_in_motion and --drain go with shards create");
  }
  absl::StatusOr<absl::Duration> ttl = flags.Duration("ttl", absl::Seconds(10));
  if (!ttl.ok()) return Usage(std::string(ttl.status().message()));
  quorate::Transaction txn;
  if (cmd == "txn") {
    absl::StatusOr<quorate::Transaction> parsed_txn = ParseTxn(std::cin);
    if (!parsed_txn.ok()) {
      return Usage(std::string(parsed_txn.status().message()));
    }
    txn = *std::move(parsed_txn);
  }
  if (flags.Bool("keys") && !(cmd == "lease" && args[1] == "ttl")) {
    return Usage("--keys goes with lease ttl");
  }
  uint64_t lease = 0;
  if (flags.Has("lease") &&
      (cmd != "put" || !ParseLeaseId(flags.Get("lease"), &lease))) {
    return Usage(absl::StrCat("--lease='", flags.Get("lease"),
                              "' goes with put and names a lease id (hex)"));
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

  if (cmd == "lease") return Lease(c, args, flags);
  if (cmd == "member" || cmd == "transfer") return Membership(c, args, flags);
  if (cmd == "snapshot") {
    absl::StatusOr<quorate::SavedSnapshot> saved = c.SaveSnapshot(args[2]);
    if (!saved.ok()) return Fail(saved.status());
    if (json) {
      JsonLine()
          .Str("saved", args[2])
          .Unsigned("index", saved->index)
          .Unsigned("bytes", saved->bytes)
          .Print();
      return 0;
    }
    printf("saved %s index=%llu bytes=%llu\n", args[2].c_str(),
           static_cast<unsigned long long>(saved->index),
           static_cast<unsigned long long>(saved->bytes));
    return 0;
  }
  if (cmd == "pause" || cmd == "resume") {
    const absl::Status s =
        cmd == "pause"
            ? quorate::PauseWorkload(&c, args[1], flags.Get("reason"))
            : quorate::ResumeWorkload(&c, args[1]);
    if (absl::IsInvalidArgument(s)) return Usage(std::string(s.message()));
    if (s.ok() && json) {
      JsonLine()
          .Str("workload", args[1])
          .Bool("running", cmd == "resume")
          .Print();
    }
    return s.ok() ? 0 : Fail(s);
  }
  if (cmd == "workloads") {
    absl::StatusOr<std::vector<quorate::WorkloadState>> all =
        quorate::ListWorkloads(&c);
    if (!all.ok()) return Fail(all.status());
    for (const quorate::WorkloadState& w : *all) {
      if (json) {
        JsonLine()
            .Str("name", w.name)
            .Bool("running", w.running)
            .Str("reason", w.reason)
            .Print();
        continue;
      }
      printf("%s %s%s%s\n", w.name.c_str(), w.running ? "running" : "paused",
             w.reason.empty() ? "" : " ", w.reason.c_str());
    }
    return 0;
  }
  if (cmd == "shards") return Shards(c, args, flags, *ttl);
  if (cmd == "elect" && flags.Bool("observe")) return Observe(c, args[1]);
  if (cmd == "elect") return Elect(c, args[1], args[2], *ttl);
  if (cmd == "lock") {
    return LockCommand(c, args[1],
                       std::vector<std::string>(args.begin() + 2, args.end()),
                       *ttl);
  }
  if (cmd == "status") {
    absl::StatusOr<std::vector<quorate::ClusterMember>> members = c.Members();
    if (!members.ok()) return Fail(members.status());
    for (const quorate::ClusterMember& m : *members) {
      if (json) {
        JsonLine line;
        line.Str("id", m.id).Str("address", m.address);
        if (!m.error.ok()) {
          line.Bool("reachable", false).Str("error", m.error.message());
        } else {
          line.Bool("reachable", true)
              .Str("zone", m.zone)
              .Str("role", m.role)
              .Unsigned("term", m.term)
              .Str("leader", m.leader_id)
              .Str("mode", m.mode)
              .Unsigned("commit", m.commit_index)
              .Str("version", m.version)
              .Bool("voter", m.voter);
        }
        line.Print();
        continue;
      }
      if (!m.error.ok()) {
        printf("%s - unreachable - - - - -\n", m.id.c_str());
        continue;
      }
      printf("%s %s %s %llu %s %s %llu %s\n", m.id.c_str(), m.zone.c_str(),
             m.role.c_str(), static_cast<unsigned long long>(m.term),
             m.leader_id.empty() ? "-" : m.leader_id.c_str(),
             m.mode.empty() ? "-" : m.mode.c_str(),
             static_cast<unsigned long long>(m.commit_index),
             m.version.empty() ? "-" : m.version.c_str());
    }
    return 0;
  }
  if (cmd == "watch")
    return Watch(c, args[1], flags.Bool("prefix"), rev, flags.Bool("prev"));
  if (cmd == "get" && !flags.Bool("prefix") &&
      (rev != 0 || limit != 0 || flags.Bool("keys_only"))) {
    // One key, through a range read: at a past revision, or its key only.
    quorate::RangeOptions range;
    range.revision = rev;
    range.keys_only = flags.Bool("keys_only");
    range.stale = flags.Bool("stale");
    absl::StatusOr<quorate::RangeResult> r = c.Range(args[1], range);
    if (!r.ok()) return Fail(r.status());
    if (r->kvs.empty()) {
      return Fail(absl::NotFoundError(
          rev == 0 ? std::string("the key does not exist")
                   : absl::StrCat("the key did not exist at revision ", rev)));
    }
    if (json) {
      PrintKeys({r->kvs[0]}, range.keys_only);
      return 0;
    }
    const std::string& out = range.keys_only ? r->kvs[0].key : r->kvs[0].value;
    fwrite(out.data(), 1, out.size(), stdout);
    fputc('\n', stdout);
    return 0;
  }
  if (cmd == "get" && flags.Bool("prefix")) {
    // An answer holds a few MiB at most: page through the rest.
    quorate::RangeOptions range;
    range.range_end = quorate::PrefixEnd(args[1]);
    range.limit = limit;
    range.keys_only = flags.Bool("keys_only");
    range.stale = flags.Bool("stale");
    range.revision = rev;
    std::string from = args[1];
    uint64_t printed = 0;
    while (true) {
      absl::StatusOr<quorate::RangeResult> r = c.Range(from, range);
      if (!r.ok()) return Fail(r.status());
      PrintKeys(r->kvs, range.keys_only);
      printed += r->kvs.size();
      if (!r->more || r->kvs.empty() || (limit > 0 && printed >= limit)) {
        return 0;
      }
      from = r->kvs.back().key + std::string(1, '\0');  // the next key
      if (limit > 0) range.limit = limit - printed;
    }
  }
  if (cmd == "txn") {
    absl::StatusOr<quorate::TxnResult> r = c.Txn(txn);
    if (!r.ok()) return Fail(r.status());
    if (json) {
      JsonLine().Bool("succeeded", r->succeeded).Print();
    } else {
      printf("%s\n", r->succeeded ? "SUCCESS" : "FAILURE");
    }
    const std::vector<quorate::TxnOp>& ran =
        r->succeeded ? txn.success : txn.failure;
    for (size_t i = 0; i < r->results.size() && i < ran.size(); ++i) {
      switch (ran[i].kind) {
        case quorate::TxnOp::Kind::kPut:
          if (json) {
            JsonLine().Unsigned("revision", r->results[i].revision).Print();
            break;
          }
          printf("%llu\n",
                 static_cast<unsigned long long>(r->results[i].revision));
          break;
        case quorate::TxnOp::Kind::kDelete:
          if (json) {
            JsonLine().Unsigned("deleted", r->results[i].deleted).Print();
            break;
          }
          printf("deleted %llu\n",
                 static_cast<unsigned long long>(r->results[i].deleted));
          break;
        case quorate::TxnOp::Kind::kRange:
          PrintKeys(r->results[i].range.kvs, false);
          break;
      }
    }
    fflush(stdout);
    return 0;
  }
  if (cmd == "get") {
    absl::StatusOr<quorate::KeyValue> kv = c.Get(args[1], flags.Bool("stale"));
    if (!kv.ok()) return Fail(kv.status());
    if (json) {
      JsonLine()
          .Str("key", args[1])
          .Str("value", kv->value)
          .Unsigned("mod_revision", kv->revision)
          .Print();
      return 0;
    }
    fwrite(kv->value.data(), 1, kv->value.size(), stdout);
    fputc('\n', stdout);
    return 0;
  }
  absl::StatusOr<uint64_t> revision;
  if (cmd == "put") {
    revision = c.Put(args[1], args[2], lease);
  } else if (cmd == "del") {
    revision = c.Delete(args[1]);
  } else {
    revision = c.CompareAndSet(args[1], expected, args[3]);
  }
  if (!revision.ok()) return Fail(revision.status());
  if (json) {
    JsonLine().Unsigned("revision", *revision).Print();
    return 0;
  }
  printf("%llu\n", static_cast<unsigned long long>(*revision));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
