// store.h: what the email example's processes do to the database: the
// front stores inbound mail, processors thread it and queue replies under
// a shard's fence, and the audit counts the result.
#ifndef QUORATE_EMAIL_STORE_H_
#define QUORATE_EMAIL_STORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "db.h"

namespace quorate_email {

// The shard group the processors join, and its number of shards. A front
// derives a message's shard with ShardOf(mailbox, kShards): it must agree
// with the group the processors create.
inline constexpr char kGroup[] = "mailboxes";
inline constexpr uint32_t kShards = 16;

// ---- the front ----
struct InboundMessage {
  std::string message_id;         // the row's key: "<id>/mailbox"
  std::string header_message_id;  // the Message-ID the message carries
  std::string mailbox;
  uint32_t shard = 0;
  std::string mail_from;  // the envelope's
  std::string rcpt;       // the envelope recipient this copy is for
  std::string front;      // which front accepted it
  std::string raw;
};

// Stores one recipient's copy, in the caller's transaction. A key stored
// before (a client that resends a message after a lost 250) is left as it
// is: OK, and the message is stored once.
absl::Status StoreInbound(Db& db, const InboundMessage& m);
// Messages accepted and not yet processed (or quarantined).
absl::StatusOr<int64_t> InboundBacklog(Db& db);

// ---- processors ----
// One turn of a processor on one shard it owns.
struct ShardTurn {
  uint32_t shard = 0;
  uint64_t epoch = 0;         // the shard's epoch, from Owns()
  std::string processor;      // the processor's id
  size_t batch = 32;          // messages in one transaction at most
  size_t outbox_limit = 256;  // pending replies per shard at most
  // Asked before each message: may this processor start it? (It owns the
  // shard, its session is not in jeopardy, inbound-email runs and the
  // shard is not being revoked.)
  std::function<bool()> may_start;
  // Tests only: called after the turn read its messages and before it
  // writes, to let another processor act in between; and a turn without
  // the fence (the broken variant the audit must catch).
  std::function<void()> after_read;
  bool skip_fence = false;
};

struct TurnResult {
  size_t processed = 0;      // threaded and committed
  size_t quarantined = 0;    // committed to quarantine
  bool outbox_full = false;  // stopped: the shard's outbox is at its limit
  bool refused = false;      // the fence refused the epoch: rolled back
  bool stopped = false;      // may_start said no
};

// Takes the shard's oldest unprocessed messages (up to `batch`), and in
// one transaction fenced by (kGroup/shard, epoch): threads each into a
// conversation (by In-Reply-To, then References, nearest first; else a new
// one), queues its auto-reply in the outbox, and marks it processed; or
// quarantines it with its reason. A refusal of the fence rolls everything
// back and is recorded in fence_refusals. A message the database refuses
// for good (any error but ABORTED and UNAVAILABLE) is quarantined alone in
// a transaction of its own, after the batch is rolled back, so that it
// cannot stop its shard. Other errors are returned after rolling back;
// ABORTED may be retried.
absl::StatusOr<TurnResult> ProcessInbound(Db& db, const ShardTurn& turn);

struct OutboxMessage {
  std::string message_id;
  std::string in_reply_to;
  std::string mail_from;
  std::string rcpt;
  std::string body;
};
// The shard's pending replies, oldest first, read outside any transaction.
absl::StatusOr<std::vector<OutboxMessage>> PendingReplies(Db& db,
                                                          uint32_t shard,
                                                          size_t limit);
// Marks `ids` sent (or, with state "failed", refused for good by the
// smarthost: not sent again), in one transaction fenced like
// ProcessInbound's. False when the fence refused (nothing marked; the new
// owner sends them again).
absl::StatusOr<bool> MarkSent(Db& db, const ShardTurn& turn,
                              const std::vector<std::string>& ids,
                              const std::string& state = "sent");
// Pending replies of one shard.
absl::StatusOr<int64_t> PendingReplyCount(Db& db, uint32_t shard);

// ---- the audit ----
struct AuditReport {
  int64_t accepted = 0;         // inbound rows
  int64_t processed_once = 0;   // ids in conversation_messages once, and
                                // not quarantined
  int64_t quarantined = 0;      // ids quarantined once, not processed
  int64_t missing = 0;          // accepted, neither processed nor quarantined
  int64_t processed_twice = 0;  // ids processed or quarantined more than once
  int64_t backlog = 0;          // inbound rows not marked processed
  int64_t conversations = 0;
  int64_t conversations_duplicated = 0;  // conversations past the first
                                         // that start with one message
  int64_t replies_queued = 0;            // outbox rows
  int64_t replies_sent = 0;              // marked sent
  int64_t replies_failed = 0;            // refused for good (5xx)
  int64_t replies_delivered = 0;         // outbox ids the sink received
  int64_t replies_duplicated = 0;        // receptions past the first per id
  int64_t replies_lost = 0;              // marked sent, never received
  int64_t fence_refusals = 0;
  bool sink_read = false;
  // Exit status: 0 only with nothing missing, processed twice or lost.
  bool ok() const {
    return missing == 0 && processed_twice == 0 && replies_lost == 0;
  }
};
// Reads the database and, if `sink_file` is not empty, the sink's file
// (NOT_FOUND if it does not exist, DATA_LOSS for a line that is not one of
// the sink's records).
absl::StatusOr<AuditReport> Audit(Db& db, const std::string& sink_file);
// The report as name=value lines.
std::string FormatAudit(const AuditReport& r);

// How long messages took from the front's commit (accepted_mono_ns) to
// their conversation row (processed_mono_ns), over every processed
// message, and how many per second went through from the first accept to
// the last conversation row.
struct LatencyReport {
  int64_t messages = 0;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
  double per_second = 0;
};
absl::StatusOr<LatencyReport> Latency(Db& db);

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_STORE_H_
