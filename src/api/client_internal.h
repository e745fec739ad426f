// api/client_internal.h: what the API's own parts (elections, locks) use of
// a Client beyond its public interface.
#ifndef QUORATE_API_CLIENT_INTERNAL_H_
#define QUORATE_API_CLIENT_INTERNAL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "quorate/client.h"
#include "wire/client.grpc.pb.h"

namespace quorate::api {

// A key as the wire has it.
KeyRecord FromWire(const client::KeyValue& kv);

// Client::Txn on the wire's own messages: a write is retried with one
// operation id, as Txn's are. INVALID_ARGUMENT for a Client that
// Client::Create did not make.
absl::Status WireTxn(Client* c, client::TxnRequest req,
                     client::TxnResponse* resp);

// A shard group call (quorate/shards.h): a write, retried with one
// operation id.
absl::Status WireShard(Client* c, client::ShardRequest req,
                       client::ShardResponse* resp);

// A unary method of the wire's Kv service, called as Client's own calls
// are: retried until the client's timeout, following the leader; a
// `write` gets an operation id (its request must have an `op`) and its
// retries carry it. Instantiated in client.cc for the requests the etcd
// gateway sends (Range, Compact, LeaseGrant, LeaseRevoke,
// LeaseTimeToLive, LeaseLeases).
template <class Req, class Resp>
using WireMethod = grpc::Status (client::Kv::Stub::*)(grpc::ClientContext*,
                                                      const Req&, Resp*);
template <class Req, class Resp>
absl::Status WireCall(Client* c, bool write, WireMethod<Req, Resp> rpc, Req req,
                      Resp* resp);

// One renewal of lease `id`, at the leader (followed as WireCall does),
// on a KeepAlive stream of its own. The answer's code says whether it was
// renewed (OK) or is gone (NOT_FOUND).
absl::StatusOr<client::LeaseRenewalAnswer> WireRenew(Client* c, uint64_t id);

// The client's stub for the member at `address` (its channel shared with
// the client's own calls), for streams.
absl::StatusOr<client::Kv::Stub*> WireStub(Client* c,
                                           const std::string& address);

// Every key in [key, options.range_end), paging through answers cut short
// (3 MiB each), every page at the first page's revision; the result's
// revision is that one. options.limit must be 0.
absl::StatusOr<RangeResult> RangeAll(Client* c, absl::string_view key,
                                     RangeOptions options);

}  // namespace quorate::api

#endif  // QUORATE_API_CLIENT_INTERNAL_H_
