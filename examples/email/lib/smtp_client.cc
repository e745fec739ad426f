#include "smtp_client.h"

#include <curl/curl.h>

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

}  // namespace

void InitCurl() { curl_global_init(CURL_GLOBAL_DEFAULT); }

SmtpClient::SmtpClient(std::string server, std::string helo)
    : url_(absl::StrCat("smtp://", server, "/", helo)),
      curl_(curl_easy_init()) {}

SmtpClient::~SmtpClient() { curl_easy_cleanup(curl_); }

absl::Status SmtpClient::Send(const std::string& from,
                              const std::vector<std::string>& to,
                              const std::string& data,
                              absl::Duration deadline) {
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
  CURLcode rc = curl_easy_perform(curl_);
  curl_slist_free_all(rcpts);
  last_code_ = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &last_code_);
  if (rc == CURLE_OK) return absl::OkStatus();
  std::string why = absl::StrCat("smtp to ", url_, ": ", curl_easy_strerror(rc),
                                 " (reply ", last_code_, ")");
  if (last_code_ >= 500 && last_code_ < 600) {
    return absl::FailedPreconditionError(why);
  }
  return absl::UnavailableError(why);
}

}  // namespace quorate_email
