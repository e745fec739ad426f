#include "util/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace quorate::testing {
namespace {

std::string Http(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::write(fd, request.data(), request.size()) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
  }
  ::close(fd);
  const size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

}  // namespace

int AdminPortInLog(const std::string& log, size_t from) {
  const std::string text = ReadAll(log);
  if (from >= text.size()) return 0;
  const std::string kSays = "admin HTTP on ";
  const size_t at = text.find(kSays, from);
  if (at == std::string::npos) return 0;
  const size_t end = text.find('\n', at);
  if (end == std::string::npos) return 0;  // the line is not complete yet
  const std::string address =
      text.substr(at + kSays.size(), end - at - kSays.size());
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return 0;
  }
  return port;
}

size_t FileSize(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  return ec ? 0 : static_cast<size_t>(size);
}

std::string HttpGet(int port, const std::string& path) {
  return Http(port, absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: x\r\n\r\n"));
}

std::string HttpPost(int port, const std::string& path,
                     const std::string& body) {
  return Http(port, absl::StrCat("POST ", path,
                                 " HTTP/1.0\r\nHost: x\r\nContent-Type: "
                                 "application/json\r\nContent-Length: ",
                                 body.size(), "\r\n\r\n", body));
}

std::string JsonString(const std::string& doc, const std::string& key) {
  for (const char* sep : {"\": \"", "\":\""}) {
    const std::string k = absl::StrCat("\"", key, sep);
    const size_t at = doc.find(k);
    if (at == std::string::npos) continue;
    const size_t end = doc.find('"', at + k.size());
    return doc.substr(at + k.size(), end - at - k.size());
  }
  return "";
}

int64_t JsonInt(const std::string& doc, const std::string& key) {
  for (const char* sep : {"\": ", "\":"}) {
    const std::string k = absl::StrCat("\"", key, sep);
    const size_t at = doc.find(k);
    if (at == std::string::npos) continue;
    size_t from = at + k.size();
    if (from < doc.size() && doc[from] == '"') ++from;  // etcd quotes int64
    size_t end = from;
    while (end < doc.size() &&
           (std::isdigit(static_cast<unsigned char>(doc[end])) ||
            doc[end] == '-')) {
      ++end;
    }
    int64_t v = -1;
    if (absl::SimpleAtoi(doc.substr(from, end - from), &v)) return v;
  }
  return -1;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Process::Process(const std::vector<std::string>& args, const std::string& log) {
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  const int rc =
      posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) pid_ = -1;
}

Process::~Process() {
  if (pid_ > 0 && !exit_.has_value()) {
    ::kill(pid_, SIGKILL);
    Wait(absl::Seconds(10));
  }
}

void Process::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> Process::Wait(absl::Duration limit) {
  if (exit_.has_value() || pid_ <= 0) return exit_;
  // A pidfd becomes readable when the process exits.
  const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  if (fd >= 0) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(limit)));
    ::close(fd);
  }
  int status = 0;
  if (::waitpid(pid_, &status, fd >= 0 ? WNOHANG : 0) == pid_) {
    exit_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  return exit_;
}

}  // namespace quorate::testing
