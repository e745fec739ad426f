// transport/tls.h: mutual TLS from PEM files, one loader for the member's
// transport, the client library and the command-line tools.
//
//   TlsFiles files{"ca.pem", "n1.pem", "n1.key"};
//   QUORATE_ASSIGN_OR_RETURN(auto creds, ChannelCredentials(files));
//
// All three files empty: plaintext. All three given: mutual TLS, each side
// checking that the other's certificate is signed by the CA. Anything else
// is INVALID_ARGUMENT, as is a file that cannot be read or holds no PEM
// block; the message names the file.
#ifndef QUORATE_TRANSPORT_TLS_H_
#define QUORATE_TRANSPORT_TLS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Declared here so that headers naming TlsFiles (transport.h, node.h) do
// not pull in gRPC's.
namespace grpc {
class AuthContext;
class ChannelCredentials;
class ServerCredentials;
}  // namespace grpc

namespace quorate::transport {

// PEM files for mutual TLS (the public quorate::TlsOptions, below the API).
struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool enabled() const {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty();
  }
};

// OK for none or all three files; INVALID_ARGUMENT otherwise. Reads no
// file: for validating options before anything starts.
absl::Status CheckTlsFiles(const TlsFiles& files);

// Identities, carried in a certificate as a URI subject alternative name.
// A member's certificate names the member (`quorate:member:n1`); only such
// a certificate opens a peer stream, and only as that member. A client's
// (quoratectl, quorate::Client) names a client (`quorate:client:NAME`) or
// nothing: any certificate the CA signed may call the client API.
std::string MemberUri(const std::string& name);
std::string ClientUri(const std::string& name);
// Whether the authenticated peer of a TLS connection holds a certificate
// naming member `name`. False without TLS.
bool HasMemberIdentity(const grpc::AuthContext& auth, const std::string& name);

// Credentials for dialing members (a member's peers, a client).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsFiles& files);
// Credentials for a member's listener: with TLS, a client certificate
// signed by the CA is required.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsFiles& files);

}  // namespace quorate::transport

#endif  // QUORATE_TRANSPORT_TLS_H_
