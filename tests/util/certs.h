// tests/util/certs.h: throwaway certificates for mutual-TLS tests.
#ifndef QUORATE_TESTS_UTIL_CERTS_H_
#define QUORATE_TESTS_UTIL_CERTS_H_

#include <map>
#include <string>
#include <vector>

namespace quorate::testing {

// A CA named `ca` (ca.pem, ca.key) and, for each of `names`, NAME.pem and
// NAME.key signed by it for 127.0.0.1, made with the openssl command line
// in `dir`. Each certificate carries the URI SAN `uris` gives it, or by
// default the member identity of its name (transport::MemberUri). False if
// openssl failed.
bool MakeCertificates(const std::string& dir, const std::string& ca,
                      const std::vector<std::string>& names,
                      const std::map<std::string, std::string>& uris = {});

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_CERTS_H_
