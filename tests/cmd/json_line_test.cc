// quoratectl's --output=json lines (cmd/json_line.h).
#include "cmd/json_line.h"

#include <gtest/gtest.h>

#include <string>

namespace quorate::cmd {
namespace {

TEST(JsonLineTest, FieldsInOrder) {
  EXPECT_EQ(JsonLine()
                .Str("key", "a")
                .Unsigned("revision", 7)
                .Num("delta", -3)
                .Bool("ok", true)
                .Strs("keys", {"x", "y"})
                .Object("error", JsonLine().Str("code", "NOT_FOUND"))
                .str(),
            R"({"key": "a", "revision": 7, "delta": -3, "ok": true, )"
            R"("keys": ["x", "y"], "error": {"code": "NOT_FOUND"}})");
  EXPECT_EQ(JsonLine().str(), "{}");
}

TEST(JsonLineTest, EscapesWhatJsonMust) {
  EXPECT_EQ(JsonLine().Str("v", "a\"b\\c\nd\te\x01").str(),
            R"({"v": "a\"b\\c\nd\u0009e\u0001"})");
  // UTF-8 passes through as it is.
  EXPECT_EQ(JsonLine().Str("v", "caf\xc3\xa9 \xe2\x82\xac").str(),
            "{\"v\": \"caf\xc3\xa9 \xe2\x82\xac\"}");
}

TEST(JsonLineTest, BytesThatAreNotUtf8GoInBase64) {
  const std::string binary("\xff\x00\x10", 3);
  EXPECT_EQ(JsonLine().Str("value", binary).str(),
            R"({"value_base64": "/wAQ"})");
  EXPECT_EQ(JsonLine().Strs("keys", {"ok", binary}).str(),
            R"({"keys_base64": ["b2s=", "/wAQ"]})");
}

TEST(JsonLineTest, Utf8Validation) {
  EXPECT_TRUE(IsUtf8(""));
  EXPECT_TRUE(IsUtf8("plain"));
  EXPECT_TRUE(IsUtf8("\xf0\x9f\x98\x80"));   // U+1F600
  EXPECT_FALSE(IsUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsUtf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(IsUtf8("\xf4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsUtf8("\x80"));              // a lone continuation
  EXPECT_FALSE(IsUtf8("\xe2\x82"));          // truncated at the end
}

}  // namespace
}  // namespace quorate::cmd
