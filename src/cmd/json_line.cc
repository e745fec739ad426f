#include "cmd/json_line.h"

#include <cstdio>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "admin/admin_server.h"

namespace quorate::cmd {

using admin::JsonQuote;

bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

void JsonLine::Name(absl::string_view name) {
  if (!body_.empty()) body_ += ", ";
  absl::StrAppend(&body_, JsonQuote(name), ": ");
}

JsonLine& JsonLine::Str(absl::string_view name, absl::string_view value) {
  if (IsUtf8(value)) {
    Name(name);
    body_ += JsonQuote(value);
  } else {
    Name(absl::StrCat(name, "_base64"));
    body_ += JsonQuote(absl::Base64Escape(value));
  }
  return *this;
}

JsonLine& JsonLine::Num(absl::string_view name, int64_t value) {
  Name(name);
  absl::StrAppend(&body_, value);
  return *this;
}

JsonLine& JsonLine::Unsigned(absl::string_view name, uint64_t value) {
  Name(name);
  absl::StrAppend(&body_, value);
  return *this;
}

JsonLine& JsonLine::Bool(absl::string_view name, bool value) {
  Name(name);
  body_ += value ? "true" : "false";
  return *this;
}

JsonLine& JsonLine::Strs(absl::string_view name,
                         const std::vector<std::string>& v) {
  bool utf8 = true;
  for (const std::string& s : v) utf8 = utf8 && IsUtf8(s);
  Name(utf8 ? std::string(name) : absl::StrCat(name, "_base64"));
  body_ += "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i > 0) body_ += ", ";
    body_ += JsonQuote(utf8 ? v[i] : absl::Base64Escape(v[i]));
  }
  body_ += "]";
  return *this;
}

JsonLine& JsonLine::Object(absl::string_view name, const JsonLine& value) {
  Name(name);
  body_ += value.str();
  return *this;
}

void JsonLine::Print() const {
  const std::string line = str() + "\n";
  fwrite(line.data(), 1, line.size(), stdout);
  fflush(stdout);
}

}  // namespace quorate::cmd
