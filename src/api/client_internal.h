// api/client_internal.h: what the API's own parts (elections, locks) use of
// a Client beyond its public interface.
#ifndef QUORATE_API_CLIENT_INTERNAL_H_
#define QUORATE_API_CLIENT_INTERNAL_H_

#include "absl/status/status.h"
#include "quorate/client.h"
#include "wire/client.pb.h"

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

// Every key in [key, options.range_end), paging through answers cut short
// (3 MiB each), every page at the first page's revision; the result's
// revision is that one. options.limit must be 0.
absl::StatusOr<RangeResult> RangeAll(Client* c, absl::string_view key,
                                     RangeOptions options);

}  // namespace quorate::api

#endif  // QUORATE_API_CLIENT_INTERNAL_H_
