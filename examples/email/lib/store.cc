#include "store.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "message.h"
#include "quorate/fence.h"

namespace quorate_email {
namespace {

// The single number a query such as SELECT count(*) returns.
absl::StatusOr<int64_t> Count(Db& db, absl::string_view sql,
                              const std::vector<Param>& params = {}) {
  absl::StatusOr<std::vector<Row>> rows = db.Query(sql, params);
  if (!rows.ok()) return rows.status();
  if (rows->empty() || rows->front().empty()) return 0;
  return AsInt(rows->front()[0]);
}

void RecordRefusal(Db& db, const ShardTurn& turn, absl::string_view what,
                   absl::string_view reason) {
  // Outside the refused transaction (rolled back): a row of its own.
  db.Exec(
        "INSERT INTO fence_refusals(processor, shard, epoch, what, reason, "
        "at_mono_ns) VALUES($1, $2, $3, $4, $5, $6)",
        {turn.processor, static_cast<int64_t>(turn.shard),
         static_cast<int64_t>(turn.epoch), std::string(what),
         std::string(reason), MonoNowNs()})
      .IgnoreError();
}

// Begin, then the fence. `refused` is set when the fence refused the
// epoch (the transaction is rolled back, the refusal recorded).
absl::Status BeginFenced(Db& db, const ShardTurn& turn, absl::string_view what,
                         bool* refused) {
  *refused = false;
  absl::Status s = db.Begin();
  if (!s.ok()) return s;
  if (turn.skip_fence) return absl::OkStatus();
  s = db.Fence(quorate::ShardFence(kGroup, turn.shard, turn.epoch));
  if (s.ok()) return s;
  db.Rollback();
  if (absl::IsFailedPrecondition(s)) {
    *refused = true;
    RecordRefusal(db, turn, what, s.message());
    return absl::OkStatus();
  }
  return s;
}

std::string ConversationSubject(absl::string_view subject) {
  absl::string_view s = subject;
  while (absl::StartsWithIgnoreCase(s, "re:") ||
         absl::StartsWithIgnoreCase(s, "fw:")) {
    s.remove_prefix(3);
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  }
  return std::string(s);
}

// One message, inside the turn's transaction.
absl::Status ProcessOne(Db& db, const ShardTurn& turn, const Row& row,
                        TurnResult* result, int64_t* pending_replies) {
  const std::string& id = *row[0];
  const std::string& header_id = *row[1];
  const std::string& mailbox = *row[2];
  const std::string mail_from = row[3].value_or("");
  const std::string& raw = *row[4];
  const int64_t shard = turn.shard;
  const int64_t epoch = static_cast<int64_t>(turn.epoch);
  int64_t now = MonoNowNs();
  absl::StatusOr<ParsedMessage> m = ParseMessage(raw);
  if (!m.ok()) {
    std::string reason(m.status().message());
    absl::Status s = db.Exec(
        "INSERT INTO quarantine(message_id, shard, epoch, processor, reason, "
        "quarantined_mono_ns) VALUES($1, $2, $3, $4, $5, $6)",
        {id, shard, epoch, turn.processor, reason, now});
    if (!s.ok()) return s;
    s = db.Exec(
        "UPDATE inbound SET processed_by = $1, processed_epoch = $2, "
        "quarantine_reason = $3 WHERE message_id = $4",
        {turn.processor, epoch, reason, id});
    if (!s.ok()) return s;
    ++result->quarantined;
    return absl::OkStatus();
  }
  // The conversation of the nearest parent this mailbox has seen.
  int64_t conversation = 0;
  for (const std::string& parent : m->parents) {
    absl::StatusOr<std::vector<Row>> rows = db.Query(
        "SELECT conversation_id FROM conversation_messages "
        "WHERE mailbox = $1 AND header_message_id = $2 LIMIT 1",
        {mailbox, parent});
    if (!rows.ok()) return rows.status();
    if (!rows->empty()) {
      conversation = AsInt(rows->front()[0]);
      break;
    }
  }
  if (conversation == 0) {
    absl::StatusOr<std::vector<Row>> rows = db.Query(
        "INSERT INTO conversations(mailbox, subject, shard) "
        "VALUES($1, $2, $3) RETURNING id",
        {mailbox, ConversationSubject(m->subject), shard});
    if (!rows.ok()) return rows.status();
    if (rows->empty()) return absl::InternalError("INSERT returned no id");
    conversation = AsInt(rows->front()[0]);
  }
  absl::Status s = db.Exec(
      "INSERT INTO conversation_messages(conversation_id, message_id, "
      "header_message_id, mailbox, shard, epoch, processor, "
      "processed_mono_ns) VALUES($1, $2, $3, $4, $5, $6, $7, $8)",
      {conversation, id, header_id, mailbox, shard, epoch, turn.processor,
       now});
  if (!s.ok()) return s;
  s = db.Exec(
      "UPDATE inbound SET processed_by = $1, processed_epoch = $2 "
      "WHERE message_id = $3",
      {turn.processor, epoch, id});
  if (!s.ok()) return s;
  // RFC 3834: no reply to a null sender or to an automatic message.
  if (!mail_from.empty() && !m->auto_submitted) {
    std::string reply_id = ReplyMessageId(id, mailbox);
    s = db.Exec(
        "INSERT INTO outbox(message_id, in_reply_to, shard, state, "
        "mail_from, rcpt, body, created_mono_ns) "
        "VALUES($1, $2, $3, 'pending', $4, $5, $6, $7) "
        "ON CONFLICT (message_id) DO NOTHING",
        {reply_id, header_id, shard, mailbox, mail_from,
         BuildReply(reply_id, mailbox, mail_from, m->subject, header_id), now});
    if (!s.ok()) return s;
    ++*pending_replies;
  }
  ++result->processed;
  return absl::OkStatus();
}

// The message_id of one line of the sink's file.
absl::StatusOr<std::string> SinkMessageId(absl::string_view line) {
  constexpr absl::string_view kKey = "\"message_id\": \"";
  size_t at = line.find(kKey);
  if (at == absl::string_view::npos) {
    return absl::DataLossError(
        absl::StrCat("sink line without message_id: ", line.substr(0, 80)));
  }
  std::string out;
  for (size_t i = at + kKey.size(); i < line.size(); ++i) {
    char c = line[i];
    if (c == '"') return out;
    if (c == '\\' && i + 1 < line.size()) {
      char e = line[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      continue;
    }
    out += c;
  }
  return absl::DataLossError(
      absl::StrCat("sink line cut short: ", line.substr(0, 80)));
}

// Quarantines message `id` with `why` in a fenced transaction of its own.
absl::StatusOr<TurnResult> QuarantineAlone(Db& db, const ShardTurn& turn,
                                           const std::string& id,
                                           const absl::Status& why) {
  TurnResult result;
  absl::Status s = BeginFenced(db, turn, "inbound", &result.refused);
  if (!s.ok() || result.refused) {
    if (!s.ok()) return s;
    return result;
  }
  const std::string reason(Utf8Prefix(
      absl::StrCat("the database refused it: ", JsonEscape(why.message())),
      500));
  const int64_t epoch = static_cast<int64_t>(turn.epoch);
  s = db.Exec(
      "INSERT INTO quarantine(message_id, shard, epoch, processor, reason, "
      "quarantined_mono_ns) VALUES($1, $2, $3, $4, $5, $6)",
      {id, static_cast<int64_t>(turn.shard), epoch, turn.processor, reason,
       MonoNowNs()});
  if (s.ok()) {
    s = db.Exec(
        "UPDATE inbound SET processed_by = $1, processed_epoch = $2, "
        "quarantine_reason = $3 WHERE message_id = $4",
        {turn.processor, epoch, reason, id});
  }
  if (s.ok()) s = db.Commit();
  if (!s.ok()) {
    db.Rollback();
    return s;
  }
  result.quarantined = 1;
  return result;
}

}  // namespace

absl::Status StoreInbound(Db& db, const InboundMessage& m) {
  // A key stored before is a resend: nothing to do. (DO NOTHING, not a
  // caught constraint error, which would abort a PostgreSQL transaction.)
  return db.Exec(
      "INSERT INTO inbound(message_id, mailbox, shard, accepted_mono_ns, "
      "header_message_id, mail_from, rcpt, front, raw) "
      "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9) "
      "ON CONFLICT (message_id) DO NOTHING",
      {m.message_id, m.mailbox, static_cast<int64_t>(m.shard), MonoNowNs(),
       m.header_message_id, m.mail_from, m.rcpt, m.front, m.raw});
}

absl::StatusOr<int64_t> InboundBacklog(Db& db) {
  return Count(db, "SELECT count(*) FROM inbound WHERE processed_by IS NULL");
}

absl::StatusOr<int64_t> PendingReplyCount(Db& db, uint32_t shard) {
  return Count(db,
               "SELECT count(*) FROM outbox WHERE shard = $1 AND "
               "state = 'pending'",
               {static_cast<int64_t>(shard)});
}

absl::StatusOr<TurnResult> ProcessInbound(Db& db, const ShardTurn& turn) {
  TurnResult result;
  absl::Status s = BeginFenced(db, turn, "inbound", &result.refused);
  if (!s.ok() || result.refused) {
    if (!s.ok()) return s;
    return result;
  }
  auto fail = [&](absl::Status why) {
    db.Rollback();
    return why;
  };
  absl::StatusOr<std::vector<Row>> rows = db.Query(
      "SELECT message_id, header_message_id, mailbox, mail_from, raw "
      "FROM inbound WHERE shard = $1 AND processed_by IS NULL "
      "ORDER BY accepted_mono_ns, message_id LIMIT $2",
      {static_cast<int64_t>(turn.shard), static_cast<int64_t>(turn.batch)});
  if (!rows.ok()) return fail(rows.status());
  absl::StatusOr<int64_t> pending = PendingReplyCount(db, turn.shard);
  if (!pending.ok()) return fail(pending.status());
  if (turn.after_read) turn.after_read();
  for (const Row& row : *rows) {
    if (turn.may_start && !turn.may_start()) {
      result.stopped = true;
      break;
    }
    if (*pending >= static_cast<int64_t>(turn.outbox_limit)) {
      result.outbox_full = true;
      break;
    }
    s = ProcessOne(db, turn, row, &result, &*pending);
    if (absl::IsAborted(s) || absl::IsUnavailable(s)) return fail(s);
    if (!s.ok()) {
      // The database refuses this message for good: it would stop the
      // shard on every turn. Quarantine it alone, and move on.
      db.Rollback();
      return QuarantineAlone(db, turn, *row[0], s);
    }
  }
  s = db.Commit();
  if (!s.ok()) return fail(s);
  return result;
}

absl::StatusOr<std::vector<OutboxMessage>> PendingReplies(Db& db,
                                                          uint32_t shard,
                                                          size_t limit) {
  absl::StatusOr<std::vector<Row>> rows = db.Query(
      "SELECT message_id, in_reply_to, mail_from, rcpt, body FROM outbox "
      "WHERE shard = $1 AND state = 'pending' "
      "ORDER BY created_mono_ns, message_id LIMIT $2",
      {static_cast<int64_t>(shard), static_cast<int64_t>(limit)});
  if (!rows.ok()) return rows.status();
  std::vector<OutboxMessage> out;
  for (const Row& r : *rows) {
    out.push_back({r[0].value_or(""), r[1].value_or(""), r[2].value_or(""),
                   r[3].value_or(""), r[4].value_or("")});
  }
  return out;
}

absl::StatusOr<bool> MarkSent(Db& db, const ShardTurn& turn,
                              const std::vector<std::string>& ids,
                              const std::string& state) {
  bool refused = false;
  absl::Status s = BeginFenced(db, turn, "outbound", &refused);
  if (!s.ok()) return s;
  if (refused) return false;
  int64_t now = MonoNowNs();
  for (const std::string& id : ids) {
    s = db.Exec(
        "UPDATE outbox SET state = $1, sent_mono_ns = $2, sent_by = $3, "
        "sent_epoch = $4 WHERE message_id = $5 AND state = 'pending'",
        {state, now, turn.processor, static_cast<int64_t>(turn.epoch), id});
    if (!s.ok()) {
      db.Rollback();
      return s;
    }
  }
  s = db.Commit();
  if (!s.ok()) {
    db.Rollback();
    return s;
  }
  return true;
}

absl::StatusOr<AuditReport> Audit(Db& db, const std::string& sink_file) {
  AuditReport r;
  struct Item {
    int64_t* out;
    const char* sql;
  };
  const Item items[] = {
      {&r.accepted, "SELECT count(*) FROM inbound"},
      {&r.backlog, "SELECT count(*) FROM inbound WHERE processed_by IS NULL"},
      {&r.processed_once,
       "SELECT count(*) FROM (SELECT message_id FROM conversation_messages "
       "GROUP BY message_id HAVING count(*) = 1) a WHERE NOT EXISTS "
       "(SELECT 1 FROM quarantine q WHERE q.message_id = a.message_id)"},
      {&r.quarantined,
       "SELECT count(*) FROM (SELECT message_id FROM quarantine "
       "GROUP BY message_id HAVING count(*) = 1) a WHERE NOT EXISTS "
       "(SELECT 1 FROM conversation_messages c "
       "WHERE c.message_id = a.message_id)"},
      {&r.processed_twice,
       "SELECT count(*) FROM (SELECT message_id FROM (SELECT message_id FROM "
       "conversation_messages UNION ALL SELECT message_id FROM quarantine) t "
       "GROUP BY message_id HAVING count(*) > 1) u"},
      {&r.missing,
       "SELECT count(*) FROM inbound i WHERE NOT EXISTS (SELECT 1 FROM "
       "conversation_messages c WHERE c.message_id = i.message_id) AND NOT "
       "EXISTS (SELECT 1 FROM quarantine q WHERE q.message_id = "
       "i.message_id)"},
      {&r.conversations, "SELECT count(*) FROM conversations"},
      {&r.conversations_duplicated,
       "SELECT count(first_id) - count(DISTINCT first_id) FROM (SELECT "
       "(SELECT m.message_id FROM conversation_messages m WHERE "
       "m.conversation_id = c.id ORDER BY m.processed_mono_ns, m.message_id "
       "LIMIT 1) AS first_id FROM conversations c) t"},
      {&r.replies_queued, "SELECT count(*) FROM outbox"},
      {&r.replies_sent, "SELECT count(*) FROM outbox WHERE state = 'sent'"},
      {&r.replies_failed, "SELECT count(*) FROM outbox WHERE state = 'failed'"},
      {&r.fence_refusals, "SELECT count(*) FROM fence_refusals"},
  };
  for (const Item& item : items) {
    absl::StatusOr<int64_t> n = Count(db, item.sql);
    if (!n.ok()) return n.status();
    *item.out = *n;
  }
  if (sink_file.empty()) return r;
  std::ifstream in(sink_file);
  if (!in) {
    return absl::NotFoundError(absl::StrCat("cannot read ", sink_file));
  }
  std::map<std::string, int64_t> received;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    absl::StatusOr<std::string> id = SinkMessageId(line);
    if (!id.ok()) return id.status();
    ++received[*id];
  }
  r.sink_read = true;
  absl::StatusOr<std::vector<Row>> outbox =
      db.Query("SELECT message_id, state FROM outbox");
  if (!outbox.ok()) return outbox.status();
  for (const Row& row : *outbox) {
    auto it = received.find(row[0].value_or(""));
    if (it == received.end()) {
      if (row[1].value_or("") == "sent") ++r.replies_lost;
      continue;
    }
    ++r.replies_delivered;
    r.replies_duplicated += it->second - 1;
  }
  return r;
}

std::string FormatAudit(const AuditReport& r) {
  // Without the sink's file the reply counts are not known: they read 0,
  // and sink=none says why.
  return absl::StrCat(
      "accepted=", r.accepted, "\nprocessed_once=", r.processed_once,
      "\nquarantined=", r.quarantined, "\nmissing=", r.missing,
      "\nprocessed_twice=", r.processed_twice, "\nbacklog=", r.backlog,
      "\nconversations=", r.conversations,
      "\nconversations_duplicated=", r.conversations_duplicated,
      "\nreplies_queued=", r.replies_queued, "\nreplies_sent=", r.replies_sent,
      "\nreplies_delivered=", r.replies_delivered,
      "\nreplies_duplicated=", r.replies_duplicated,
      "\nreplies_lost=", r.replies_lost, "\nfence_refusals=", r.fence_refusals,
      "\nsink=", r.sink_read ? "read" : "none", "\n");
}

absl::StatusOr<LatencyReport> Latency(Db& db) {
  absl::StatusOr<std::vector<Row>> rows = db.Query(
      "SELECT i.accepted_mono_ns, c.processed_mono_ns FROM "
      "conversation_messages c JOIN inbound i ON i.message_id = c.message_id");
  if (!rows.ok()) return rows.status();
  LatencyReport r;
  std::vector<int64_t> ns;
  int64_t first = INT64_MAX, last = INT64_MIN;
  for (const Row& row : *rows) {
    const int64_t accepted = AsInt(row[0]), processed = AsInt(row[1]);
    ns.push_back(processed - accepted);
    first = std::min(first, accepted);
    last = std::max(last, processed);
  }
  if (ns.empty()) return r;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    return static_cast<double>(ns[std::min(
               ns.size() - 1, static_cast<size_t>(q * ns.size()))]) /
           1e6;
  };
  r.messages = static_cast<int64_t>(ns.size());
  r.p50_ms = at(0.50);
  r.p99_ms = at(0.99);
  r.max_ms = static_cast<double>(ns.back()) / 1e6;
  if (last > first) {
    r.per_second = static_cast<double>(ns.size()) /
                   (static_cast<double>(last - first) / 1e9);
  }
  return r;
}

}  // namespace quorate_email
