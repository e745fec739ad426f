#include "smtp_client.h"

#include <curl/curl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace quorate_email {
namespace {

struct Reader {
  const std::string* data;
  size_t offset = 0;
};

size_t ReadBody(char* buffer, size_t size, size_t count, void* user) {
  auto* r = static_cast<Reader*>(user);
  size_t n = std::min(size * count, r->data->size() - r->offset);
  std::memcpy(buffer, r->data->data() + r->offset, n);
  r->offset += n;
  return n;
}

// Remembers the socket of the connection curl opens (a client has one at
// a time), so that a send can be cut short by shutting it down.
int NoteSocket(void* user, curl_socket_t fd, curlsocktype) {
  *static_cast<int*>(user) = static_cast<int>(fd);
  return CURL_SOCKOPT_OK;
}
// ... and forgets it when curl closes it, so that a cancel never shuts
// down a descriptor number the process has since reused.
int CloseSocket(void* user, curl_socket_t fd) {
  int* noted = static_cast<int*>(user);
  if (*noted == static_cast<int>(fd)) *noted = -1;
  return ::close(fd);
}

}  // namespace

void InitCurl() { curl_global_init(CURL_GLOBAL_DEFAULT); }

SmtpClient::SmtpClient(std::string server, std::string helo)
    : url_(absl::StrCat("smtp://", server, "/", helo)),
      curl_(curl_easy_init()),
      multi_(curl_multi_init()) {}

SmtpClient::~SmtpClient() {
  // curl says QUIT on a connection it still holds, and waits for the
  // answer up to its own 120 s, whatever the sends' deadlines: a smarthost
  // gone silent or unreachable (a zone cut) held a stopping processor's
  // worker, and with it the processor's next session, that long. The
  // connection is of no more use: shut it down, and the QUIT fails at once.
  if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
  curl_easy_cleanup(curl_);
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
}

absl::Status SmtpClient::Send(const std::string& from,
                              const std::vector<std::string>& to,
                              const std::string& data, absl::Duration deadline,
                              const std::function<bool()>& keep_going) {
  if (curl_ == nullptr) return absl::InternalError("curl_easy_init failed");
  Reader reader{&data};
  curl_slist* rcpts = nullptr;
  for (const std::string& t : to) {
    rcpts = curl_slist_append(rcpts, absl::StrCat("<", t, ">").c_str());
  }
  std::string mail_from = absl::StrCat("<", from, ">");
  long ms = std::max<long>(1, absl::ToInt64Milliseconds(deadline));
  curl_easy_setopt(curl_, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(curl_, CURLOPT_MAIL_FROM, mail_from.c_str());
  curl_easy_setopt(curl_, CURLOPT_MAIL_RCPT, rcpts);
  curl_easy_setopt(curl_, CURLOPT_READFUNCTION, ReadBody);
  curl_easy_setopt(curl_, CURLOPT_READDATA, &reader);
  curl_easy_setopt(curl_, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(curl_, CURLOPT_INFILESIZE_LARGE,
                   static_cast<curl_off_t>(data.size()));
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, std::min(ms, 5000L));
  curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl_, CURLOPT_SOCKOPTFUNCTION, NoteSocket);
  curl_easy_setopt(curl_, CURLOPT_SOCKOPTDATA, &socket_);
  curl_easy_setopt(curl_, CURLOPT_CLOSESOCKETFUNCTION, CloseSocket);
  curl_easy_setopt(curl_, CURLOPT_CLOSESOCKETDATA, &socket_);
  // The multi interface, so that the wait can be checked on and cut short;
  // its connection cache keeps the connection open between messages.
  auto* multi = static_cast<CURLM*>(multi_);
  CURLcode rc = CURLE_OK;
  bool cancelled = false;
  if (multi == nullptr || curl_multi_add_handle(multi, curl_) != CURLM_OK) {
    rc = curl_easy_perform(curl_);
  } else {
    int running = 1;
    while (running > 0) {
      if (curl_multi_perform(multi, &running) != CURLM_OK) break;
      if (running == 0) break;
      if (keep_going && !keep_going()) {
        // Removing a transfer in flight would have curl finish the SMTP
        // dialogue first, waiting on the server. Shutting the connection
        // down instead makes the transfer fail at once, with an error,
        // and curl drops the connection.
        cancelled = true;
        if (socket_ >= 0) ::shutdown(socket_, SHUT_RDWR);
        for (int i = 0; i < 100 && running > 0; ++i) {
          if (curl_multi_perform(multi, &running) != CURLM_OK) break;
          if (running > 0) curl_multi_poll(multi, nullptr, 0, 10, nullptr);
        }
        break;
      }
      curl_multi_poll(multi, nullptr, 0, 50, nullptr);
    }
    int left = 0;
    rc = cancelled ? CURLE_ABORTED_BY_CALLBACK : CURLE_RECV_ERROR;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl_ && !cancelled)
        rc = msg->data.result;
    }
    curl_multi_remove_handle(multi, curl_);
  }
  curl_slist_free_all(rcpts);
  last_code_ = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &last_code_);
  if (cancelled) {
    return absl::CancelledError(
        absl::StrCat("smtp to ", url_, ": stopped while waiting"));
  }
  if (rc == CURLE_OK) return absl::OkStatus();
  std::string why = absl::StrCat("smtp to ", url_, ": ", curl_easy_strerror(rc),
                                 " (reply ", last_code_, ")");
  if (last_code_ >= 500 && last_code_ < 600) {
    return absl::FailedPreconditionError(why);
  }
  return absl::UnavailableError(why);
}

}  // namespace quorate_email
