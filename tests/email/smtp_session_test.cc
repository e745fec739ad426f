// The SMTP front's state machine (examples/email/lib/smtp_session.h),
// driven directly with a clock of the test's own.
#include "lib/smtp_session.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace quorate_email {
namespace {

class SmtpSessionTest : public ::testing::Test {
 protected:
  void Make(SmtpLimits limits = {}) {
    session_ = std::make_unique<SmtpSession>(
        "mx.test", limits,
        [this](const Envelope& e) {
          delivered_.push_back(e);
          return SmtpReply{250, "2.0.0 stored"};
        },
        nullptr, now_);
  }
  // Replies' codes, in order.
  std::vector<int> Codes(const std::string& replies) {
    std::vector<int> codes;
    for (absl::string_view line :
         absl::StrSplit(replies, "\r\n", absl::SkipEmpty())) {
      // The last line of a multi-line reply ("250 ...", not "250-...").
      if (line.size() >= 4 && line[3] == '-') continue;
      codes.push_back(std::stoi(std::string(line.substr(0, 3))));
    }
    return codes;
  }
  std::vector<int> Send(const std::string& bytes) {
    return Codes(session_->Feed(bytes, now_));
  }

  absl::Time now_ = absl::FromUnixSeconds(1000);
  std::unique_ptr<SmtpSession> session_;
  std::vector<Envelope> delivered_;
};

TEST_F(SmtpSessionTest, AWholeTransactionDeliversOneMessage) {
  Make();
  EXPECT_EQ(session_->Greeting().substr(0, 4), "220 ");
  EXPECT_EQ(Send("EHLO client.test\r\n"), std::vector<int>{250});
  EXPECT_EQ(Send("MAIL FROM:<Bob@Remote.TEST>\r\n"), std::vector<int>{250});
  EXPECT_EQ(Send("RCPT TO:<alice@example.test>\r\n"), std::vector<int>{250});
  EXPECT_EQ(Send("DATA\r\n"), std::vector<int>{354});
  EXPECT_EQ(Send("Subject: hi\r\n\r\nbody\r\n..dotted\r\n.\r\n"),
            std::vector<int>{250});
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].from, "Bob@remote.test");
  EXPECT_EQ(delivered_[0].to, std::vector<std::string>{"alice@example.test"});
  EXPECT_EQ(delivered_[0].data, "Subject: hi\r\n\r\nbody\r\n.dotted\r\n");
  EXPECT_EQ(Send("QUIT\r\n"), std::vector<int>{221});
  EXPECT_TRUE(session_->closed());
}

TEST_F(SmtpSessionTest, PipelinedCommandsAreAnsweredInOrder) {
  Make();
  // RFC 2920: everything up to DATA in one write; then the message.
  EXPECT_EQ(Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\n"
                 "RCPT TO:<bad address>\r\nRCPT TO:<z@y.test>\r\nDATA\r\n"),
            (std::vector<int>{250, 250, 250, 501, 250, 354}));
  EXPECT_EQ(Send("Subject: s\r\n\r\nx\r\n.\r\nMAIL FROM:<>\r\n"
                 "RCPT TO:<x@y.test>\r\nDATA\r\nbody\r\n.\r\nQUIT\r\n"),
            (std::vector<int>{250, 250, 250, 354, 250, 221}));
  ASSERT_EQ(delivered_.size(), 2u);
  EXPECT_EQ(delivered_[0].to.size(), 2u);
  EXPECT_EQ(delivered_[1].from, "");  // the null reverse path
}

TEST_F(SmtpSessionTest, CommandsOutOfSequenceAreRefused) {
  SmtpLimits limits;
  limits.max_errors = 20;  // more than this test makes
  Make(limits);
  EXPECT_EQ(Send("MAIL FROM:<a@b.test>\r\n"), std::vector<int>{503});
  EXPECT_EQ(Send("HELO\r\n"), std::vector<int>{501});
  EXPECT_EQ(Send("HELO c\r\n"), std::vector<int>{250});
  EXPECT_EQ(Send("RCPT TO:<x@y.test>\r\n"), std::vector<int>{503});
  EXPECT_EQ(Send("DATA\r\n"), std::vector<int>{503});
  EXPECT_EQ(Send("MAIL FROM:<a@b.test>\r\n"), std::vector<int>{250});
  EXPECT_EQ(Send("MAIL FROM:<a@b.test>\r\n"), std::vector<int>{503});
  EXPECT_EQ(Send("DATA\r\n"), std::vector<int>{554});  // no recipients
  EXPECT_EQ(Send("MAIL FROM a@b.test\r\n"), std::vector<int>{503});
  EXPECT_EQ(Send("RSET\r\n"), std::vector<int>{250});
  EXPECT_EQ(Send("MAIL FROM a@b.test\r\n"), std::vector<int>{501});
  EXPECT_EQ(Send("FROB\r\n"), std::vector<int>{500});
  EXPECT_EQ(Send("STARTTLS\r\n"), std::vector<int>{502});
  EXPECT_EQ(Send("NOOP\r\n"), std::vector<int>{250});
  EXPECT_TRUE(delivered_.empty());
  EXPECT_FALSE(session_->closed());
}

TEST_F(SmtpSessionTest, TooManyErrorsCloseTheConnection) {
  SmtpLimits limits;
  limits.max_errors = 3;
  Make(limits);
  EXPECT_EQ(Send("X\r\nY\r\n"), (std::vector<int>{500, 500}));
  EXPECT_FALSE(session_->closed());
  EXPECT_EQ(Send("Z\r\nNOOP\r\n"), (std::vector<int>{500, 421}));
  EXPECT_TRUE(session_->closed());
}

TEST_F(SmtpSessionTest, TooManyRecipientsAreDeferred) {
  SmtpLimits limits;
  limits.max_recipients = 2;
  Make(limits);
  EXPECT_EQ(Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<1@y.test>\r\n"
                 "RCPT TO:<2@y.test>\r\nRCPT TO:<3@y.test>\r\nDATA\r\n"),
            (std::vector<int>{250, 250, 250, 250, 452, 354}));
  Send("x\r\n.\r\n");
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_EQ(delivered_[0].to.size(), 2u);
}

TEST_F(SmtpSessionTest, AnOversizedMessageIsRefusedAndDiscarded) {
  SmtpLimits limits;
  limits.max_message = 100;
  Make(limits);
  EXPECT_EQ(Send("EHLO c\r\nMAIL FROM:<a@b.test> SIZE=101\r\n"),
            (std::vector<int>{250, 552}));
  EXPECT_EQ(Send("MAIL FROM:<a@b.test> SIZE=50\r\nRCPT TO:<x@y.test>\r\n"
                 "DATA\r\n"),
            (std::vector<int>{250, 250, 354}));
  // Lines that add up past the limit, and a partial line far past it.
  std::string big;
  for (int i = 0; i < 5; ++i) big += std::string(30, 'a') + "\r\n";
  EXPECT_TRUE(Send(big).empty());
  EXPECT_TRUE(Send(std::string(100000, 'b')).empty());
  EXPECT_EQ(Send("\r\n.\r\n"), std::vector<int>{552});
  EXPECT_TRUE(delivered_.empty());
  // The session goes on: the next message is taken.
  EXPECT_EQ(Send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n"
                 "small\r\n.\r\n"),
            (std::vector<int>{250, 250, 354, 250}));
  EXPECT_EQ(delivered_.size(), 1u);
}

// The CR and the LF that end the overlong line arrive in two reads: the
// next line's "." still ends the message (with 552, not a timeout).
TEST_F(SmtpSessionTest, AnOversizedLineSplitBetweenItsCrAndLfStillEnds) {
  SmtpLimits limits;
  limits.max_message = 100;
  Make(limits);
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  EXPECT_TRUE(Send(std::string(300, 'a') + "\r").empty());
  EXPECT_TRUE(Send("\n").empty());
  EXPECT_EQ(Send(".\r\n"), std::vector<int>{552});
  // And when the oversize shows first on a read ending in that CR.
  Send("MAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  EXPECT_TRUE(Send(std::string(50, 'a') + "\r\n").empty());
  EXPECT_TRUE(Send(std::string(80, 'b') + "\r").empty());
  EXPECT_TRUE(Send("\n").empty());
  EXPECT_EQ(Send(".\r\n"), std::vector<int>{552});
  EXPECT_TRUE(delivered_.empty());
}

TEST_F(SmtpSessionTest, AnOverlongCommandLineIsRefused) {
  SmtpLimits limits;
  limits.max_line = 64;
  Make(limits);
  // Whole, and arriving in pieces without its end.
  EXPECT_EQ(Send("HELO " + std::string(100, 'h') + "\r\n"),
            std::vector<int>{500});
  EXPECT_EQ(Send(std::string(70, 'x')), std::vector<int>{500});
  EXPECT_TRUE(Send(std::string(1000, 'x')).empty());  // still dropped
  EXPECT_EQ(Send("\r\nHELO c\r\n"), std::vector<int>{250});
}

TEST_F(SmtpSessionTest, OnlyCrLfDotCrLfEndsTheData) {
  Make();
  Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  // A bare LF "." LF is not the end (SMTP smuggling): what follows it,
  // even a MAIL command, is data.
  EXPECT_TRUE(
      Send("a\n.\nMAIL FROM:<evil@b.test>\r\nRCPT TO:<v@y.test>\r\n").empty());
  EXPECT_EQ(Send(".\r\n"), std::vector<int>{250});
  ASSERT_EQ(delivered_.size(), 1u);
  EXPECT_NE(delivered_[0].data.find("MAIL FROM:<evil@b.test>"),
            std::string::npos);
}

TEST_F(SmtpSessionTest, EveryStateTimesOut) {
  SmtpLimits limits;
  limits.command_timeout = absl::Seconds(30);
  limits.data_idle_timeout = absl::Seconds(20);
  limits.data_total_timeout = absl::Seconds(50);
  Make(limits);
  EXPECT_EQ(session_->Deadline(), now_ + absl::Seconds(30));
  // A partial command does not count as activity.
  now_ += absl::Seconds(10);
  Send("HEL");
  EXPECT_EQ(session_->Deadline(), now_ - absl::Seconds(10) + absl::Seconds(30));
  Send("O c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<x@y.test>\r\nDATA\r\n");
  absl::Time data_start = now_;
  EXPECT_EQ(session_->Deadline(), now_ + absl::Seconds(20));
  // Trickling data keeps the idle deadline moving, but not the total one.
  for (int i = 0; i < 6; ++i) {
    now_ += absl::Seconds(10);
    Send("x");
  }
  EXPECT_EQ(session_->Deadline(), data_start + absl::Seconds(50));
  EXPECT_EQ(Codes(session_->TimedOut()), std::vector<int>{421});
  EXPECT_TRUE(session_->closed());
  EXPECT_TRUE(delivered_.empty());
}

TEST_F(SmtpSessionTest, TheDeliverersReplyIsTheReplyToData) {
  session_ = std::make_unique<SmtpSession>(
      "mx.test", SmtpLimits{},
      [](const Envelope&) {
        return SmtpReply{451, "4.3.0 try again later"};
      },
      [](const std::string& rcpt) {
        return rcpt == "no@y.test" ? SmtpReply{550, "5.1.1 no such user"}
                                   : SmtpReply{250, "OK"};
      },
      now_);
  EXPECT_EQ(Send("EHLO c\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<no@y.test>\r\n"
                 "RCPT TO:<ok@y.test>\r\nDATA\r\nx\r\n.\r\n"),
            (std::vector<int>{250, 250, 550, 250, 354, 451}));
}

}  // namespace
}  // namespace quorate_email
