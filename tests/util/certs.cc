#include "util/certs.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "transport/tls.h"

namespace quorate::testing {

bool MakeCertificates(const std::string& dir, const std::string& ca,
                      const std::vector<std::string>& names,
                      const std::map<std::string, std::string>& uris) {
  std::string script = absl::StrCat(
      "set -e; cd '", dir, "'; ",
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=", ca,
      " -keyout ", ca, ".key -out ", ca, ".pem 2>/dev/null; ");
  for (const std::string& n : names) {
    auto uri = uris.find(n);
    absl::StrAppend(
        &script, "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,URI:",
        uri != uris.end() ? uri->second : transport::MemberUri(n), "\\n' > ", n,
        ".ext; ", "openssl req -newkey rsa:2048 -nodes -subj /CN=", n,
        " -keyout ", n, ".key -out ", n, ".csr 2>/dev/null; ",
        "openssl x509 -req -in ", n, ".csr -CA ", ca, ".pem -CAkey ", ca,
        ".key -CAcreateserial -days 2 -extfile ", n, ".ext -out ", n,
        ".pem 2>/dev/null; ");
  }
  return std::system(("bash -c \"" + script + "\"").c_str()) == 0;
}

}  // namespace quorate::testing
