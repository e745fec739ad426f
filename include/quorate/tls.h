// quorate/tls.h: mutual TLS between members, and between clients and
// members, from PEM files.
//
//   quorate::TlsOptions tls{"ca.pem", "n1.pem", "n1.key"};
//   member_options.tls = tls;   // or client_options.tls, quoratectl --tls_*
//
// All three empty: plaintext. All three given: mutual TLS; each side
// requires the other's certificate to be signed by the CA. Anything else
// is refused with INVALID_ARGUMENT, as is a file that cannot be read or
// holds no PEM block.
#ifndef QUORATE_TLS_H_
#define QUORATE_TLS_H_

#include <string>

namespace quorate {

struct TlsOptions {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

}  // namespace quorate

#endif  // QUORATE_TLS_H_
