#include "message.h"

#include <cctype>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace quorate_email {
namespace {

// The header section's lines, unfolded into fields. `ok` false with a
// reason when the section is malformed.
struct Field {
  std::string name;
  std::string value;
};

absl::StatusOr<std::vector<Field>> SplitHeader(absl::string_view raw,
                                               bool strict) {
  std::vector<Field> fields;
  size_t pos = 0;
  bool ended = false;
  while (pos < raw.size()) {
    size_t eol = raw.find('\n', pos);
    if (eol == absl::string_view::npos) {
      if (strict) {
        return absl::InvalidArgumentError("header section without its end");
      }
      eol = raw.size();
    }
    if (strict && eol > kMaxHeaderBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("header section over ", kMaxHeaderBytes, " bytes"));
    }
    absl::string_view line = raw.substr(pos, eol - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = eol + 1;
    if (line.empty()) {
      ended = true;
      break;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      if (fields.empty()) {
        if (!strict) continue;
        return absl::InvalidArgumentError(
            "continuation line before the first header field");
      }
      absl::StrAppend(&fields.back().value, " ",
                      absl::StripAsciiWhitespace(line));
      continue;
    }
    size_t colon = line.find(':');
    bool name_ok = colon != absl::string_view::npos && colon > 0;
    for (size_t i = 0; name_ok && i < colon; ++i) {
      unsigned char c = static_cast<unsigned char>(line[i]);
      name_ok = c > 32 && c < 127;
    }
    if (!name_ok) {
      if (!strict) continue;
      return absl::InvalidArgumentError(
          absl::StrCat("header line is not a field: \"",
                       JsonEscape(Utf8Prefix(line, 60)), "\""));
    }
    fields.push_back(
        {absl::AsciiStrToLower(line.substr(0, colon)),
         std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)))});
  }
  if (strict && !ended && pos >= raw.size() && !raw.empty() &&
      raw.back() != '\n') {
    return absl::InvalidArgumentError("header section without its end");
  }
  return fields;
}

bool ValidIdChar(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  return u > 32 && u < 127 && c != '<' && c != '>';
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseIds(absl::string_view value) {
  std::vector<std::string> ids;
  size_t i = 0;
  while (i < value.size()) {
    char c = value[i];
    if (c == ' ' || c == '\t' || c == ',') {
      ++i;
      continue;
    }
    if (c != '<') {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed message id list \"",
                       JsonEscape(Utf8Prefix(value, 60)), "\""));
    }
    size_t close = value.find('>', i);
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError("message id without its '>'");
    }
    absl::string_view inner = value.substr(i + 1, close - i - 1);
    size_t at = inner.find('@');
    bool ok = at != absl::string_view::npos && at > 0 &&
              at + 1 < inner.size() && inner.size() + 2 <= kMaxIdBytes;
    for (char ch : inner) ok = ok && ValidIdChar(ch);
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("malformed message id \"<",
                       JsonEscape(Utf8Prefix(inner, 60)), ">\""));
    }
    ids.push_back(std::string(value.substr(i, close - i + 1)));
    i = close + 1;
  }
  return ids;
}

absl::StatusOr<ParsedMessage> ParseMessage(absl::string_view raw) {
  absl::StatusOr<std::vector<Field>> fields = SplitHeader(raw, true);
  if (!fields.ok()) return fields.status();
  ParsedMessage m;
  std::vector<std::string> references;
  bool have_from = false;
  for (const Field& f : *fields) {
    if (f.name == "message-id" && m.message_id.empty()) {
      absl::StatusOr<std::vector<std::string>> ids = ParseIds(f.value);
      if (!ids.ok() || ids->size() != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("malformed Message-ID \"",
                         JsonEscape(Utf8Prefix(f.value, 60)), "\""));
      }
      m.message_id = (*ids)[0];
    } else if (f.name == "from" && !have_from) {
      // "Name <a@b>" or "a@b": the address is in the angle brackets if
      // there are any.
      absl::string_view v = f.value;
      size_t open = v.rfind('<');
      if (open != absl::string_view::npos) v = v.substr(open);
      absl::StatusOr<std::string> a = NormalizeAddress(v);
      if (!a.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "malformed From \"", JsonEscape(Utf8Prefix(f.value, 60)), "\""));
      }
      m.from = *a;
      have_from = true;
    } else if (f.name == "subject" && m.subject.empty()) {
      m.subject = std::string(Utf8Prefix(f.value, 998));
    } else if (f.name == "in-reply-to" && m.in_reply_to.empty()) {
      absl::StatusOr<std::vector<std::string>> ids = ParseIds(f.value);
      if (!ids.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("In-Reply-To: ", ids.status().message()));
      }
      if (!ids->empty()) m.in_reply_to = ids->back();
    } else if (f.name == "references" && references.empty()) {
      absl::StatusOr<std::vector<std::string>> ids = ParseIds(f.value);
      if (!ids.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("References: ", ids.status().message()));
      }
      references = std::move(*ids);
    } else if (f.name == "auto-submitted") {
      m.auto_submitted = !absl::EqualsIgnoreCase(
          absl::StripAsciiWhitespace(f.value.substr(0, f.value.find(';'))),
          "no");
    }
  }
  if (!have_from) return absl::InvalidArgumentError("no From address");
  if (!m.in_reply_to.empty()) m.parents.push_back(m.in_reply_to);
  for (auto it = references.rbegin(); it != references.rend(); ++it) {
    if (*it != m.in_reply_to) m.parents.push_back(*it);
  }
  if (m.parents.size() > kMaxReferences) {
    return absl::InvalidArgumentError(
        absl::StrCat(m.parents.size(), " parent ids, over ", kMaxReferences));
  }
  return m;
}

std::string HeaderValue(absl::string_view raw, absl::string_view name) {
  absl::StatusOr<std::vector<Field>> fields =
      SplitHeader(raw.substr(0, std::min(raw.size(), kMaxHeaderBytes)), false);
  if (!fields.ok()) return "";
  for (const Field& f : *fields) {
    if (absl::EqualsIgnoreCase(f.name, name)) return f.value;
  }
  return "";
}

absl::StatusOr<std::string> NormalizeAddress(absl::string_view address) {
  absl::string_view a = absl::StripAsciiWhitespace(address);
  if (absl::ConsumePrefix(&a, "<")) {
    if (!absl::ConsumeSuffix(&a, ">")) {
      return absl::InvalidArgumentError("address without its '>'");
    }
  }
  size_t at = a.rfind('@');
  if (at == absl::string_view::npos || at == 0 || at + 1 == a.size() ||
      a.size() > 254) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an address: \"", JsonEscape(address), "\""));
  }
  for (char c : a) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == '<' || c == '>' || c == '"' || c == ',' ||
        c == ';') {
      return absl::InvalidArgumentError(
          absl::StrCat("not an address: \"", JsonEscape(address), "\""));
    }
  }
  if (a.substr(0, at).find('@') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an address: \"", JsonEscape(address), "\""));
  }
  return absl::StrCat(a.substr(0, at), "@",
                      absl::AsciiStrToLower(a.substr(at + 1)));
}

absl::StatusOr<std::string> MailboxOf(absl::string_view recipient) {
  absl::StatusOr<std::string> a = NormalizeAddress(recipient);
  if (!a.ok()) return a.status();
  std::string lower = absl::AsciiStrToLower(*a);
  size_t at = lower.rfind('@');
  size_t plus = lower.find('+');
  if (plus != std::string::npos && plus < at && plus > 0) {
    lower.erase(plus, at - plus);
  }
  return lower;
}

uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t h = 14695981039346656037ull;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ull;
  }
  return h;
}

uint32_t ShardOf(absl::string_view mailbox, uint32_t shards) {
  return static_cast<uint32_t>(Fnv1a64(mailbox) % shards);
}

std::string ReplyMessageId(absl::string_view message_id,
                           absl::string_view mailbox) {
  absl::string_view domain = mailbox.substr(mailbox.rfind('@') + 1);
  return absl::StrFormat("<reply.%016x@%s>",
                         Fnv1a64(absl::StrCat(mailbox, "\n", message_id)),
                         domain);
}

std::string BuildReply(absl::string_view reply_id, absl::string_view from,
                       absl::string_view to, absl::string_view subject,
                       absl::string_view in_reply_to) {
  // One header line: no CR or LF from the original's subject, and short
  // enough for SMTP's 998-byte line limit.
  std::string clean(Utf8Prefix(subject, 900));
  for (char& c : clean) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  subject = clean;
  return absl::StrCat(
      "From: <", from, ">\r\nTo: <", to, ">\r\nSubject: Re: ", subject,
      "\r\nMessage-ID: ", reply_id, "\r\nIn-Reply-To: ", in_reply_to,
      "\r\nReferences: ", in_reply_to,
      "\r\nAuto-Submitted: auto-replied\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n\r\n"
      "Your message was received and filed in its conversation.\r\n");
}

namespace {

// The length of the UTF-8 character at the start of `s`, or 0 if `s` does
// not start with a well-formed one.
size_t Utf8Length(absl::string_view s) {
  const unsigned char c = static_cast<unsigned char>(s[0]);
  size_t n = c < 0x80         ? 1
             : (c >> 5) == 6  ? 2
             : (c >> 4) == 14 ? 3
             : (c >> 3) == 30 ? 4
                              : 0;
  if (n == 0 || n > s.size()) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) return 0;
  }
  // Overlong forms and values past U+10FFFF or in the surrogates.
  const unsigned char d = n > 1 ? static_cast<unsigned char>(s[1]) : 0;
  if ((n == 2 && c < 0xc2) || (n == 3 && c == 0xe0 && d < 0xa0) ||
      (n == 3 && c == 0xed && d >= 0xa0) || (n == 4 && c == 0xf0 && d < 0x90) ||
      (n == 4 && (c > 0xf4 || (c == 0xf4 && d >= 0x90)))) {
    return 0;
  }
  return n;
}

}  // namespace

bool ValidUtf8(absl::string_view s) {
  while (!s.empty()) {
    const size_t n = Utf8Length(s);
    if (n == 0) return false;
    s.remove_prefix(n);
  }
  return true;
}

absl::string_view Utf8Prefix(absl::string_view s, size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  return s.substr(0, n);
}

std::string JsonEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const unsigned char u = static_cast<unsigned char>(c);
    if (u >= 0x80) {
      const size_t n = Utf8Length(s.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not UTF-8
      } else {
        out.append(s.data() + i, n);
        i += n - 1;
      }
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          absl::StrAppendFormat(&out, "\\u%04x", u);
        } else {
          out += c;
        }
    }
  }
  return out;
}

}  // namespace quorate_email
