// The email example's database work (examples/email/lib/store.h) on SQLite
// and on a private PostgreSQL: threading, quarantine, the outbox bound,
// the fence, and the audit, with broken variants the audit must catch.
#include "lib/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "lib/db.h"
#include "lib/message.h"
#include "util/pg_server.h"

namespace quorate_email {
namespace {

class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    if (quorate::testing::PgServer::BinDir().empty()) return;
    absl::StatusOr<std::unique_ptr<quorate::testing::PgServer>> s =
        quorate::testing::PgServer::Start({"fsync=off"});
    ASSERT_TRUE(s.ok()) << s.status();
    pg_ = s->release();
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  void SetUp() override {
    static int n = 0;
    if (GetParam() == "postgres") {
      if (pg_ == nullptr) {
        GTEST_SKIP() << "PostgreSQL server binaries not found";
      }
      std::string name = absl::StrCat("store", ++n);
      ASSERT_TRUE(pg_->CreateDatabase(name).ok());
      spec_ = pg_->Url(name);
    } else {
      char tmpl[] = "/tmp/email-store-XXXXXX";
      ASSERT_NE(::mkdtemp(tmpl), nullptr);
      dir_ = tmpl;
      spec_ = dir_ + "/mail.db";
    }
    db_ = Open();
    ASSERT_TRUE(EnsureSchema(*db_).ok());
  }
  void TearDown() override {
    db_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<Db> Open() {
    absl::StatusOr<std::unique_ptr<Db>> db = Db::Open(spec_);
    EXPECT_TRUE(db.ok()) << db.status();
    return db.ok() ? std::move(*db) : nullptr;
  }

  // Stores a message for `mailbox` in shard 0.
  void Store(const std::string& id, const std::string& mailbox,
             const std::string& headers, const std::string& from = "s@r.test") {
    InboundMessage m;
    m.message_id = id;
    m.header_message_id = id;
    m.mailbox = mailbox;
    m.shard = 0;
    m.mail_from = from;
    m.rcpt = mailbox;
    m.front = "test";
    m.raw = absl::StrCat(headers, "\r\nbody\r\n");
    ASSERT_TRUE(StoreInbound(*db_, m).ok());
  }
  std::string Headers(const std::string& id, const std::string& extra = "") {
    return absl::StrCat("From: <s@r.test>\r\nMessage-ID: ", id,
                        "\r\nSubject: s\r\n", extra);
  }

  ShardTurn Turn(uint64_t epoch, const std::string& processor = "p1") {
    ShardTurn t;
    t.shard = 0;
    t.epoch = epoch;
    t.processor = processor;
    return t;
  }

  int64_t Count(Db& db, const std::string& sql) {
    absl::StatusOr<std::vector<Row>> rows = db.Query(sql);
    EXPECT_TRUE(rows.ok()) << rows.status();
    return rows.ok() && !rows->empty() ? AsInt(rows->front()[0]) : -1;
  }
  int64_t ConversationOf(const std::string& id) {
    return Count(*db_, absl::StrCat("SELECT conversation_id FROM "
                                    "conversation_messages WHERE message_id "
                                    "= '",
                                    id, "'"));
  }
  AuditReport MustAudit(const std::string& sink = "") {
    absl::StatusOr<AuditReport> r = Audit(*db_, sink);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : AuditReport{};
  }

  static quorate::testing::PgServer* pg_;
  std::string dir_;
  std::string spec_;
  std::unique_ptr<Db> db_;
};

quorate::testing::PgServer* StoreTest::pg_ = nullptr;

TEST_P(StoreTest, RepliesJoinTheirParentsConversationInTheirMailbox) {
  Store("<1@r.test>", "a@x.test", Headers("<1@r.test>"));
  Store("<2@r.test>", "a@x.test",
        Headers("<2@r.test>", "In-Reply-To: <1@r.test>\r\n"));
  // Only References, and a parent this mailbox never saw before it.
  Store("<3@r.test>", "a@x.test",
        Headers("<3@r.test>", "References: <1@r.test> <unknown@r.test>\r\n"));
  Store("<4@r.test>", "a@x.test", Headers("<4@r.test>"));
  // Another mailbox's message naming the same parent: its own thread.
  Store("<5@r.test>", "b@x.test",
        Headers("<5@r.test>", "In-Reply-To: <1@r.test>\r\n"));
  absl::StatusOr<TurnResult> r = ProcessInbound(*db_, Turn(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->processed, 5u);
  EXPECT_FALSE(r->refused);
  int64_t first = ConversationOf("<1@r.test>");
  EXPECT_GT(first, 0);
  EXPECT_EQ(ConversationOf("<2@r.test>"), first);
  EXPECT_EQ(ConversationOf("<3@r.test>"), first);
  EXPECT_NE(ConversationOf("<4@r.test>"), first);
  EXPECT_NE(ConversationOf("<5@r.test>"), first);
  EXPECT_NE(ConversationOf("<5@r.test>"), ConversationOf("<4@r.test>"));
  EXPECT_EQ(Count(*db_, "SELECT count(*) FROM conversations"), 3);
  // One reply each, in_reply_to the original, with the stable id.
  EXPECT_EQ(Count(*db_, "SELECT count(*) FROM outbox WHERE state = 'pending'"),
            5);
  EXPECT_EQ(Count(*db_, absl::StrCat("SELECT count(*) FROM outbox WHERE "
                                     "message_id = '",
                                     ReplyMessageId("<2@r.test>", "a@x.test"),
                                     "' AND in_reply_to = '<2@r.test>'")),
            1);
  AuditReport a = MustAudit();
  EXPECT_EQ(a.accepted, 5);
  EXPECT_EQ(a.processed_once, 5);
  EXPECT_EQ(a.missing, 0);
  EXPECT_EQ(a.processed_twice, 0);
  EXPECT_EQ(a.conversations_duplicated, 0);
  EXPECT_TRUE(a.ok());
}

TEST_P(StoreTest, WhatCannotBeParsedIsQuarantinedAndTheShardMovesOn) {
  Store("<1@r.test>", "a@x.test", "From: <s@r.test>\r\nnot a header\r\n");
  Store("<2@r.test>", "a@x.test", Headers("<2@r.test>"));
  absl::StatusOr<TurnResult> r = ProcessInbound(*db_, Turn(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->quarantined, 1u);
  EXPECT_EQ(r->processed, 1u);
  EXPECT_EQ(Count(*db_,
                  "SELECT count(*) FROM inbound WHERE message_id = "
                  "'<1@r.test>' AND quarantine_reason LIKE "
                  "'header line is not a field%'"),
            1);
  AuditReport a = MustAudit();
  EXPECT_EQ(a.quarantined, 1);
  EXPECT_EQ(a.processed_once, 1);
  EXPECT_EQ(a.missing, 0);
  EXPECT_EQ(a.backlog, 0);
  EXPECT_TRUE(a.ok());
}

TEST_P(StoreTest, NoAutoReplyToANullSenderOrToAnAutoReply) {
  Store("<1@r.test>", "a@x.test", Headers("<1@r.test>"), /*from=*/"");
  Store("<2@r.test>", "a@x.test",
        Headers("<2@r.test>", "Auto-Submitted: auto-replied\r\n"));
  ASSERT_TRUE(ProcessInbound(*db_, Turn(1)).ok());
  EXPECT_EQ(Count(*db_, "SELECT count(*) FROM outbox"), 0);
  EXPECT_EQ(MustAudit().processed_once, 2);
}

TEST_P(StoreTest, AFullOutboxHoldsInboundBack) {
  for (int i = 0; i < 5; ++i) {
    std::string id = absl::StrCat("<", i, "@r.test>");
    Store(id, "a@x.test", Headers(id));
  }
  ShardTurn turn = Turn(1);
  turn.outbox_limit = 3;
  absl::StatusOr<TurnResult> r = ProcessInbound(*db_, turn);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->processed, 3u);
  EXPECT_TRUE(r->outbox_full);
  EXPECT_EQ(MustAudit().backlog, 2);
  // Nothing moves until replies go out.
  r = ProcessInbound(*db_, turn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->processed, 0u);
  EXPECT_TRUE(r->outbox_full);
  absl::StatusOr<std::vector<OutboxMessage>> pending =
      PendingReplies(*db_, 0, 2);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 2u);
  absl::StatusOr<bool> marked = MarkSent(
      *db_, turn, {(*pending)[0].message_id, (*pending)[1].message_id});
  ASSERT_TRUE(marked.ok() && *marked);
  r = ProcessInbound(*db_, turn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->processed, 2u);
  EXPECT_EQ(MustAudit().backlog, 0);
}

TEST_P(StoreTest, MayStartIsAskedBeforeEachMessage) {
  for (int i = 0; i < 4; ++i) {
    std::string id = absl::StrCat("<", i, "@r.test>");
    Store(id, "a@x.test", Headers(id));
  }
  ShardTurn turn = Turn(1);
  int asked = 0;
  turn.may_start = [&] { return ++asked <= 2; };
  absl::StatusOr<TurnResult> r = ProcessInbound(*db_, turn);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->processed, 2u);
  EXPECT_TRUE(r->stopped);
  EXPECT_EQ(asked, 3);
  EXPECT_EQ(MustAudit().backlog, 2);
}

TEST_P(StoreTest, AStaleEpochIsRefusedAndRecorded) {
  Store("<1@r.test>", "a@x.test", Headers("<1@r.test>"));
  ASSERT_TRUE(ProcessInbound(*db_, Turn(2, "new")).ok());
  Store("<2@r.test>", "a@x.test", Headers("<2@r.test>"));
  // The old owner, stalled past the move, comes back.
  absl::StatusOr<TurnResult> r = ProcessInbound(*db_, Turn(1, "old"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->refused);
  EXPECT_EQ(r->processed, 0u);
  absl::StatusOr<std::vector<OutboxMessage>> pending =
      PendingReplies(*db_, 0, 10);
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->size(), 1u);
  absl::StatusOr<bool> marked =
      MarkSent(*db_, Turn(1, "old"), {(*pending)[0].message_id});
  ASSERT_TRUE(marked.ok());
  EXPECT_FALSE(*marked);
  AuditReport a = MustAudit();
  EXPECT_EQ(a.fence_refusals, 2);
  EXPECT_EQ(a.replies_sent, 0);
  EXPECT_EQ(a.backlog, 1);
  EXPECT_EQ(Count(*db_,
                  "SELECT count(*) FROM fence_refusals WHERE "
                  "processor = 'old' AND epoch = 1"),
            2);
}

// A resend (the same key, in the same transaction or a later one) is
// stored once, and does not spoil the transaction it is in (PostgreSQL
// aborts a transaction on a caught constraint error).
TEST_P(StoreTest, AResendIsStoredOnceWithoutSpoilingItsTransaction) {
  InboundMessage m;
  m.message_id = "<1@r.test>/a@x.test";
  m.header_message_id = "<1@r.test>";
  m.mailbox = "a@x.test";
  m.mail_from = "s@r.test";
  m.rcpt = "a@x.test";
  m.front = "test";
  m.raw = Headers("<1@r.test>") + "\r\nbody\r\n";
  ASSERT_TRUE(db_->Begin().ok());
  ASSERT_TRUE(StoreInbound(*db_, m).ok());
  ASSERT_TRUE(StoreInbound(*db_, m).ok());
  InboundMessage other = m;
  other.message_id = "<1@r.test>/b@x.test";
  other.mailbox = "b@x.test";
  ASSERT_TRUE(StoreInbound(*db_, other).ok());
  ASSERT_TRUE(db_->Commit().ok());
  ASSERT_TRUE(StoreInbound(*db_, m).ok());
  EXPECT_EQ(Count(*db_, "SELECT count(*) FROM inbound"), 2);
}

// A message the database refuses for good (here: a rule of the test's)
// would fail its shard's every turn: it is quarantined alone, and the
// others go on.
TEST_P(StoreTest, AMessageTheDatabaseRefusesIsQuarantinedAlone) {
  ASSERT_TRUE(db_->Exec(GetParam() == "postgres"
                            ? "ALTER TABLE conversations ADD CONSTRAINT "
                              "no_poison CHECK (subject <> 'poison')"
                            : "CREATE TRIGGER no_poison BEFORE INSERT ON "
                              "conversations WHEN NEW.subject = 'poison' "
                              "BEGIN SELECT RAISE(ABORT, 'poison'); END")
                  .ok());
  Store("<1@r.test>", "a@x.test", Headers("<1@r.test>"));
  Store("<2@r.test>", "a@x.test",
        "From: <s@r.test>\r\nMessage-ID: <2@r.test>\r\nSubject: poison\r\n");
  Store("<3@r.test>", "a@x.test", Headers("<3@r.test>"));
  absl::StatusOr<TurnResult> r = ProcessInbound(*db_, Turn(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->quarantined, 1u);
  EXPECT_EQ(r->processed, 0u);  // the batch was rolled back
  r = ProcessInbound(*db_, Turn(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->processed, 2u);
  AuditReport a = MustAudit();
  EXPECT_EQ(a.quarantined, 1);
  EXPECT_EQ(a.processed_once, 2);
  EXPECT_EQ(a.missing, 0);
  EXPECT_EQ(Count(*db_,
                  "SELECT count(*) FROM quarantine WHERE message_id = "
                  "'<2@r.test>' AND reason LIKE 'the database refused "
                  "it%'"),
            1);
}

// The stale owner read its messages; before it writes, the new owner takes
// the same messages. With the fence the new owner waits for the old one's
// transaction and finds the messages done; without it (the broken
// variant) both commit them, and the audit says so.
TEST_P(StoreTest, TheFenceKeepsAnInterleavedOwnerFromProcessingTwice) {
  if (GetParam() == "sqlite") {
    GTEST_SKIP() << "SQLite runs one writer at a time (BEGIN IMMEDIATE): a "
                    "second owner cannot act between the first's read and "
                    "write";
  }
  for (bool fenced : {true, false}) {
    SCOPED_TRACE(fenced ? "fenced" : "without the fence");
    std::string id = fenced ? "<f@r.test>" : "<u@r.test>";
    Store(id, "a@x.test", Headers(id));
    std::unique_ptr<Db> other = Open();
    ShardTurn stale = Turn(fenced ? 1 : 3, "old");
    stale.skip_fence = !fenced;
    std::thread successor;
    std::atomic<bool> successor_done{false};
    stale.after_read = [&] {
      successor = std::thread([&] {
        ShardTurn next = Turn(fenced ? 2 : 4, "new");
        next.skip_fence = !fenced;
        absl::StatusOr<TurnResult> r = ProcessInbound(*other, next);
        EXPECT_TRUE(r.ok()) << r.status();
        successor_done = true;
      });
      if (!fenced) successor.join();  // it does not wait for us
    };
    absl::StatusOr<TurnResult> r = ProcessInbound(*db_, stale);
    ASSERT_TRUE(r.ok()) << r.status();
    if (successor.joinable()) successor.join();
    EXPECT_TRUE(successor_done);
    AuditReport a = MustAudit();
    EXPECT_EQ(a.missing, 0);
    if (fenced) {
      EXPECT_EQ(a.processed_twice, 0);
      EXPECT_TRUE(a.ok());
    } else {
      EXPECT_EQ(a.processed_twice, 1);
      EXPECT_FALSE(a.ok());
    }
  }
}

// The audit's own broken variants: rows a bug would leave.
TEST_P(StoreTest, TheAuditCountsDoublesAndMissingMessages) {
  Store("<1@r.test>", "a@x.test", Headers("<1@r.test>"));
  Store("<2@r.test>", "a@x.test", Headers("<2@r.test>"));
  ASSERT_TRUE(ProcessInbound(*db_, Turn(1)).ok());
  ASSERT_TRUE(MustAudit().ok());
  ASSERT_TRUE(db_->Exec("INSERT INTO conversation_messages SELECT * FROM "
                        "conversation_messages WHERE message_id = '<1@r.test>'")
                  .ok());
  AuditReport a = MustAudit();
  EXPECT_EQ(a.processed_twice, 1);
  EXPECT_EQ(a.processed_once, 1);
  EXPECT_FALSE(a.ok());
  ASSERT_TRUE(db_->Exec("DELETE FROM conversation_messages WHERE message_id = "
                        "'<2@r.test>'")
                  .ok());
  a = MustAudit();
  EXPECT_EQ(a.missing, 1);
  EXPECT_FALSE(a.ok());
}

TEST_P(StoreTest, TheAuditReadsTheSinksFile) {
  for (int i = 0; i < 3; ++i) {
    std::string id = absl::StrCat("<", i, "@r.test>");
    Store(id, "a@x.test", Headers(id));
  }
  ASSERT_TRUE(ProcessInbound(*db_, Turn(1)).ok());
  absl::StatusOr<std::vector<OutboxMessage>> pending =
      PendingReplies(*db_, 0, 10);
  ASSERT_TRUE(pending.ok() && pending->size() == 3);
  std::vector<std::string> ids;
  for (const OutboxMessage& m : *pending) ids.push_back(m.message_id);
  ASSERT_TRUE(MarkSent(*db_, Turn(1), ids).ok());
  std::string sink = absl::StrCat(::testing::TempDir(), "/sink-", GetParam(),
                                  "-", ::getpid(), ".jsonl");
  auto line = [](const std::string& id) {
    return absl::StrCat("{\"t_mono_ns\": 1, \"message_id\": \"", id,
                        "\", \"from\": \"a@x.test\", \"to\": [\"s@r.test\"], "
                        "\"in_reply_to\": \"\"}\n");
  };
  {
    // The first reply twice (a resend after a crash), the second once, the
    // third never: it was marked sent but is lost.
    std::ofstream out(sink);
    out << line(ids[0]) << line(ids[1]) << line(ids[0]);
  }
  AuditReport a = MustAudit(sink);
  EXPECT_EQ(a.replies_delivered, 2);
  EXPECT_EQ(a.replies_duplicated, 1);
  EXPECT_EQ(a.replies_lost, 1);
  EXPECT_FALSE(a.ok());
  {
    std::ofstream out(sink, std::ios::app);
    out << "not json\n";
  }
  EXPECT_EQ(Audit(*db_, sink).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Audit(*db_, sink + ".none").status().code(),
            absl::StatusCode::kNotFound);
  std::filesystem::remove(sink);
}

INSTANTIATE_TEST_SUITE_P(Databases, StoreTest,
                         ::testing::Values("sqlite", "postgres"),
                         [](const auto& p) { return p.param; });

}  // namespace
}  // namespace quorate_email
