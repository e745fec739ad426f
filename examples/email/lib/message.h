// message.h: what the email example reads out of a message (RFC 5322
// headers), and the names it derives from it: a recipient's mailbox, the
// mailbox's shard, an auto-reply's stable Message-ID.
#ifndef QUORATE_EMAIL_MESSAGE_H_
#define QUORATE_EMAIL_MESSAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quorate_email {

// Limits on what a processor agrees to parse; past them a message is
// quarantined rather than threaded.
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;
inline constexpr size_t kMaxReferences = 100;
inline constexpr size_t kMaxIdBytes = 998;

struct ParsedMessage {
  std::string message_id;   // "<...>", as written (may be empty)
  std::string from;         // the address in From:, "local@domain"
  std::string subject;      // unfolded
  std::string in_reply_to;  // "<...>" or empty
  // In-Reply-To first, then References from the last (nearest parent) to
  // the first: the order in which to look for a conversation.
  std::vector<std::string> parents;
  // RFC 3834: an auto-reply must not be answered by one.
  bool auto_submitted = false;
};

// Parses the header section of `raw` (CRLF or LF line ends). Refuses, with
// INVALID_ARGUMENT and a reason fit for the quarantine table: a header
// section over kMaxHeaderBytes or without its end, a line that is neither a
// field nor a continuation, no From address, a malformed Message-ID,
// In-Reply-To or References (ids are "<left@right>"), or more than
// kMaxReferences parents.
absl::StatusOr<ParsedMessage> ParseMessage(absl::string_view raw);

// The first value of header field `name` (case-insensitive), unfolded and
// trimmed; "" if absent. For the front, which reads no more than that.
std::string HeaderValue(absl::string_view raw, absl::string_view name);

// "<id>" tokens in a Message-ID, In-Reply-To or References value. INVALID_
// ARGUMENT if anything but whitespace, comments-free ids lies between them.
absl::StatusOr<std::vector<std::string>> ParseIds(absl::string_view value);

// Normalizes an SMTP path or header address ("<A@B>", "Name <a@b>",
// "a@b") to "local@domain" with the domain lowercased and the local part
// as written. INVALID_ARGUMENT if there is no single '@' with text on both
// sides, or it has spaces or control characters.
absl::StatusOr<std::string> NormalizeAddress(absl::string_view address);

// The mailbox a recipient's mail belongs to: the normalized address,
// lowercased, with any "+tag" removed from the local part.
absl::StatusOr<std::string> MailboxOf(absl::string_view recipient);
// The shard of a mailbox among `shards`: FNV-1a (64 bit) of its bytes.
// Stable across processes, machines and versions; fronts and processors
// must agree on it.
uint32_t ShardOf(absl::string_view mailbox, uint32_t shards);
uint64_t Fnv1a64(absl::string_view bytes);

// The auto-reply to the message stored under `message_id` in `mailbox`:
// the same every time it is derived, so a resend carries the same id.
std::string ReplyMessageId(absl::string_view message_id,
                           absl::string_view mailbox);

// The auto-reply itself, as sent (CRLF line ends).
std::string BuildReply(absl::string_view reply_id, absl::string_view from,
                       absl::string_view to, absl::string_view subject,
                       absl::string_view in_reply_to);

// Escapes `s` as the body of a JSON string (no quotes added). Bytes that
// are not UTF-8 become U+FFFD, so the result is always valid JSON text.
std::string JsonEscape(absl::string_view s);

// Whether `s` is well-formed UTF-8.
bool ValidUtf8(absl::string_view s);
// The longest prefix of `s` of at most `n` bytes that does not cut a
// UTF-8 character in two.
absl::string_view Utf8Prefix(absl::string_view s, size_t n);

}  // namespace quorate_email

#endif  // QUORATE_EMAIL_MESSAGE_H_
