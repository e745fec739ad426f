// cmd/json_line.h: quoratectl's --output=json: one JSON object per line.
//
//   JsonLine().Str("key", k).Num("revision", r).Print();
//   -> {"key": "a", "revision": 7}
//
// Strings that are valid UTF-8 are written as JSON strings (control
// characters, quotes and backslashes escaped); anything else (a binary
// key or value) goes under the field's name with "_base64" appended, in
// standard base64, so that no byte is lost or changed.
#ifndef QUORATE_CMD_JSON_LINE_H_
#define QUORATE_CMD_JSON_LINE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace quorate::cmd {

class JsonLine {
 public:
  JsonLine& Str(absl::string_view name, absl::string_view value);
  JsonLine& Num(absl::string_view name, int64_t value);
  JsonLine& Unsigned(absl::string_view name, uint64_t value);
  JsonLine& Bool(absl::string_view name, bool value);
  JsonLine& Strs(absl::string_view name, const std::vector<std::string>& v);
  // A nested object, already written by another JsonLine.
  JsonLine& Object(absl::string_view name, const JsonLine& value);
  std::string str() const { return "{" + body_ + "}"; }
  // Writes it and a newline to standard output, and flushes.
  void Print() const;

 private:
  void Name(absl::string_view name);
  std::string body_;
};

bool IsUtf8(absl::string_view s);

}  // namespace quorate::cmd

#endif  // QUORATE_CMD_JSON_LINE_H_
