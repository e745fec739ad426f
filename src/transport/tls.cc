#include "transport/tls.h"

#include <grpcpp/security/auth_context.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace quorate::transport {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path,
                                    const std::string& what) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the TLS ", what, " file '", path, "'"));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("the TLS ", what, " file '", path, "' holds no PEM data"));
  }
  return ss.str();
}

struct Pems {
  std::string ca, cert, key;
};

absl::StatusOr<Pems> LoadPems(const TlsFiles& files) {
  if (absl::Status s = CheckTlsFiles(files); !s.ok()) return s;
  Pems p;
  absl::StatusOr<std::string> s = ReadPem(files.ca_file, "CA");
  if (!s.ok()) return s.status();
  p.ca = *std::move(s);
  s = ReadPem(files.cert_file, "certificate");
  if (!s.ok()) return s.status();
  p.cert = *std::move(s);
  s = ReadPem(files.key_file, "key");
  if (!s.ok()) return s.status();
  p.key = *std::move(s);
  return p;
}

}  // namespace

absl::Status CheckTlsFiles(const TlsFiles& files) {
  const int given = !files.ca_file.empty() + !files.cert_file.empty() +
                    !files.key_file.empty();
  if (given != 0 && given != 3) {
    return absl::InvalidArgumentError(
        "mutual TLS needs all three of the CA, certificate and key files");
  }
  return absl::OkStatus();
}

std::string MemberUri(const std::string& name) {
  return "quorate:member:" + name;
}

std::string ClientUri(const std::string& name) {
  return "quorate:client:" + name;
}

bool HasMemberIdentity(const grpc::AuthContext& auth, const std::string& name) {
  if (!auth.IsPeerAuthenticated()) return false;
  const std::string want = MemberUri(name);
  // gRPC lists URI SANs under "x509_uri" (newer) or "peer_uri", and every
  // SAN under "x509_subject_alternative_name": look in all of them.
  for (const char* property :
       {"x509_uri", "peer_uri", "x509_subject_alternative_name"}) {
    for (const grpc::string_ref& value : auth.FindPropertyValues(property)) {
      if (absl::string_view(value.data(), value.size()) == want) return true;
    }
  }
  return false;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureChannelCredentials();
  absl::StatusOr<Pems> pems = LoadPems(files);
  if (!pems.ok()) return pems.status();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = pems->ca;
  o.pem_private_key = pems->key;
  o.pem_cert_chain = pems->cert;
  return grpc::SslCredentials(o);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  absl::StatusOr<Pems> pems = LoadPems(files);
  if (!pems.ok()) return pems.status();
  grpc::SslServerCredentialsOptions o(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = pems->ca;
  o.pem_key_cert_pairs.push_back({pems->key, pems->cert});
  return grpc::SslServerCredentials(o);
}

}  // namespace quorate::transport
