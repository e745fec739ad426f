#include "util/pg_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace quorate::testing {
namespace {

// Runs `args` as uid/gid (this process's when they are its own), its
// output appended to `log`; its exit code, or -1 if it could not run.
// Everything the child needs is made before fork(): between fork and exec
// it only calls async-signal-safe functions (this process has threads).
int RunAs(const std::vector<std::string>& args, uid_t uid, gid_t gid,
          const std::string& log) {
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = {"LC_ALL=C"};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "LC_ALL=", 7) != 0) env_strings.push_back(*e);
  }
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (out < 0) return -1;
  const bool switch_user = ::getuid() != uid;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return -1;
  }
  if (pid == 0) {
    ::dup2(out, 1);
    ::dup2(out, 2);
    if (switch_user && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 ||
                        ::setuid(uid) != 0)) {
      ::_exit(126);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

constexpr int kSocketPort = 5432;  // names the socket file, in dir_ only

// The end of a log, for an error message (the directory goes with the
// server).
std::string Tail(const std::string& path) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  const std::string text = all.str();
  return text.size() > 800 ? text.substr(text.size() - 800) : text;
}

}  // namespace

std::string PgServer::BinDir() {
  std::error_code ec;
  std::vector<std::filesystem::path> found;
  for (const auto& entry :
       std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    if (std::filesystem::exists(entry.path() / "bin" / "initdb") &&
        std::filesystem::exists(entry.path() / "bin" / "pg_ctl")) {
      found.push_back(entry.path() / "bin");
    }
  }
  if (found.empty()) return "";
  // The newest version: "15" before "9.6" needs a numeric order.
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return std::atof(a.parent_path().filename().c_str()) <
           std::atof(b.parent_path().filename().c_str());
  });
  return found.back().string();
}

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::Start(
    const std::vector<std::string>& settings) {
  std::unique_ptr<PgServer> s(new PgServer());
  s->bin_ = BinDir();
  if (s->bin_.empty()) {
    return absl::NotFoundError(
        "no PostgreSQL server binaries under /usr/lib/postgresql (Debian "
        "package postgresql)");
  }
  char tmpl[] = "/tmp/quorate-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    return absl::InternalError("cannot make a temporary directory");
  }
  s->dir_ = tmpl;
  s->uid_ = ::getuid();
  s->gid_ = ::getgid();
  if (s->uid_ == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) pw = ::getpwnam("nobody");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, and there is no user 'postgres' or 'nobody' to "
          "run PostgreSQL as");
    }
    s->uid_ = pw->pw_uid;
    s->gid_ = pw->pw_gid;
    if (::chown(s->dir_.c_str(), s->uid_, s->gid_) != 0) {
      return absl::InternalError(absl::StrCat("cannot chown ", s->dir_));
    }
  }
  // The server writes its own log (as its user); the tools' output goes
  // to files this process opens.
  const std::string log = s->dir_ + "/server.log";
  const std::string data = s->dir_ + "/data";
  if (RunAs({s->bin_ + "/initdb", "-D", data, "-U", "quorate", "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"},
            s->uid_, s->gid_, s->dir_ + "/initdb.log") != 0) {
    return absl::InternalError(
        absl::StrCat("initdb failed: ", Tail(s->dir_ + "/initdb.log")));
  }
  std::vector<std::string> options = {absl::StrCat("-k ", s->dir_),
                                      "-c listen_addresses=''",
                                      absl::StrCat("-p ", kSocketPort)};
  for (const std::string& setting : settings) {
    options.push_back(absl::StrCat("-c ", setting));
  }
  if (RunAs({s->bin_ + "/pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o",
             absl::StrJoin(options, " "), "start"},
            s->uid_, s->gid_, s->dir_ + "/pg_ctl.log") != 0) {
    return absl::InternalError(absl::StrCat(
        "pg_ctl start failed: ", Tail(s->dir_ + "/pg_ctl.log"), Tail(log)));
  }
  s->started_ = true;
  return s;
}

PgServer::~PgServer() {
  // Started, or perhaps started: pg_ctl may give up waiting on a server
  // that then runs.
  std::error_code ec;
  if (started_ || (!dir_.empty() && std::filesystem::exists(
                                        dir_ + "/data/postmaster.pid", ec))) {
    RunAs({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w",
           "stop"},
          uid_, gid_, dir_ + "/pg_ctl.log");
  }
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string PgServer::Conninfo(absl::string_view database) const {
  return absl::StrCat("host=", dir_, " port=", kSocketPort,
                      " user=quorate dbname=", database);
}

std::string PgServer::Url(absl::string_view database) const {
  std::string host;
  for (char c : dir_) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
        c == '_' || c == '.') {
      host += c;
    } else {
      absl::StrAppendFormat(&host, "%%%02X", static_cast<unsigned char>(c));
    }
  }
  return absl::StrCat("postgresql://quorate@/", database, "?host=", host,
                      "&port=", kSocketPort);
}

absl::Status PgServer::CreateDatabase(absl::string_view name) const {
  PGconn* c = PQconnectdb(Conninfo().c_str());
  absl::Status s;
  if (PQstatus(c) != CONNECTION_OK) {
    s = absl::UnavailableError(PQerrorMessage(c));
  } else {
    PGresult* r =
        PQexec(c, absl::StrCat("CREATE DATABASE \"", name, "\"").c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
      s = absl::InternalError(PQresultErrorMessage(r));
    }
    PQclear(r);
  }
  PQfinish(c);
  return s;
}

}  // namespace quorate::testing
