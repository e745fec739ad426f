// What the email example reads out of a message, and the names it derives
// (examples/email/lib/message.h).
#include "lib/message.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_split.h"

namespace quorate_email {
namespace {

TEST(MessageTest, ParsesTheThreadingHeaders) {
  absl::StatusOr<ParsedMessage> m = ParseMessage(
      "From: Bob <bob@Remote.Test>\r\n"
      "Subject: Re: plans\r\n"
      "Message-ID: <3@r.test>\r\n"
      "In-Reply-To: <2@r.test>\r\n"
      "References: <1@r.test>\r\n <2@r.test>\r\n"
      "\r\nbody\r\n");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->from, "bob@remote.test");
  EXPECT_EQ(m->subject, "Re: plans");
  EXPECT_EQ(m->message_id, "<3@r.test>");
  // The nearest parent first: In-Reply-To, then References backwards.
  EXPECT_EQ(m->parents, (std::vector<std::string>{"<2@r.test>", "<1@r.test>"}));
  EXPECT_FALSE(m->auto_submitted);
}

TEST(MessageTest, RefusesWhatItCannotThread) {
  EXPECT_EQ(ParseMessage("Subject: x\r\n\r\n").status().message(),
            "no From address");
  EXPECT_FALSE(ParseMessage("From: <a@b.test>\r\nnot a field\r\n\r\n").ok());
  EXPECT_FALSE(ParseMessage(" folded first\r\nFrom: <a@b.test>\r\n\r\n").ok());
  EXPECT_FALSE(
      ParseMessage("From: <a@b.test>\r\nIn-Reply-To: plain text\r\n\r\n").ok());
  EXPECT_FALSE(
      ParseMessage("From: <a@b.test>\r\nMessage-ID: <noat>\r\n\r\n").ok());
  EXPECT_FALSE(ParseMessage("From: <a@b.test>\r\nSubject: no end").ok());
  std::string refs = "From: <a@b.test>\r\nReferences:";
  for (int i = 0; i <= 100; ++i) refs += " <" + std::to_string(i) + "@r.t>";
  EXPECT_FALSE(ParseMessage(refs + "\r\n\r\n").ok());
  EXPECT_FALSE(ParseMessage("From: <a@b.test>\r\n" + std::string(70000, 'X') +
                            ": y\r\n\r\n")
                   .ok());
}

TEST(MessageTest, AutoRepliesAreMarked) {
  absl::StatusOr<ParsedMessage> m =
      ParseMessage("From: <a@b.test>\r\nAuto-Submitted: auto-replied\r\n\r\n");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->auto_submitted);
  m = ParseMessage("From: <a@b.test>\r\nAuto-Submitted: no\r\n\r\n");
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(m->auto_submitted);
}

TEST(MessageTest, MailboxesAndShardsAreStable) {
  EXPECT_EQ(*MailboxOf("<Alice+news@Example.TEST>"), "alice@example.test");
  EXPECT_EQ(*MailboxOf("alice@example.test"), "alice@example.test");
  EXPECT_FALSE(MailboxOf("no-at-sign").ok());
  EXPECT_FALSE(MailboxOf("a@b@c").ok());
  EXPECT_FALSE(MailboxOf("sp ace@b.test").ok());
  // FNV-1a 64 of known input (its published test vector), and the shard
  // fronts and processors on any machine agree on.
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(ShardOf("alice@example.test", 16),
            Fnv1a64("alice@example.test") % 16);
  EXPECT_EQ(ReplyMessageId("<1@r.test>", "alice@example.test"),
            ReplyMessageId("<1@r.test>", "alice@example.test"));
  EXPECT_NE(ReplyMessageId("<1@r.test>", "alice@example.test"),
            ReplyMessageId("<1@r.test>", "bob@example.test"));
}

TEST(MessageTest, HeaderValueReadsLeniently) {
  EXPECT_EQ(
      HeaderValue("junk line\r\nMessage-ID:  <1@x>  \r\n\r\n", "message-id"),
      "<1@x>");
  EXPECT_EQ(
      HeaderValue("Subject: a\r\n\r\nMessage-ID: <body@x>\r\n", "Message-ID"),
      "");
}

TEST(MessageTest, JsonEscapeEscapesControlBytes) {
  EXPECT_EQ(JsonEscape("a\"b\\c\n\x01"), "a\\\"b\\\\c\\n\\u0001");
}

}  // namespace
}  // namespace quorate_email

namespace quorate_email {
namespace {

TEST(MessageTest, Utf8IsCheckedAndCutOnlyBetweenCharacters) {
  EXPECT_TRUE(ValidUtf8("plain, \xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac"));
  EXPECT_FALSE(ValidUtf8("\xff"));
  EXPECT_FALSE(ValidUtf8("\xc3"));          // cut short
  EXPECT_FALSE(ValidUtf8("\xc0\xaf"));      // overlong
  EXPECT_FALSE(ValidUtf8("\xed\xa0\x80"));  // a surrogate
  // Two 3-byte characters: 4 bytes hold only the first.
  EXPECT_EQ(Utf8Prefix("\xe6\x97\xa5\xe6\x9c\xac", 4), "\xe6\x97\xa5");
  EXPECT_EQ(Utf8Prefix("abc", 10), "abc");
  // What is not UTF-8 becomes U+FFFD in JSON text.
  EXPECT_EQ(JsonEscape("a\xffz"), "a\xef\xbf\xbdz");
  // And a reply's subject stays one line, under the SMTP line limit.
  std::string reply =
      BuildReply("<r@x>", "a@x.test", "b@y.test",
                 "evil\r\nBcc: c@z.test" + std::string(2000, 'x'), "<1@y>");
  EXPECT_EQ(reply.find("\r\nBcc:"), std::string::npos);
  for (absl::string_view line : absl::StrSplit(reply, "\r\n")) {
    EXPECT_LE(line.size(), 998u);
  }
}

}  // namespace
}  // namespace quorate_email
