#include "storage/crc32c.h"

#include <gtest/gtest.h>

#include <string>

#include "raft/random.h"

namespace quorate::storage {
namespace {

TEST(Crc32cTest, KnownVectors) {
  // RFC 3720 (iSCSI) test vectors.
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8a9136aau);
  const std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62a8ab43u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

TEST(Crc32cTest, ExtendingEqualsOneShot) {
  const std::string s = "the quick brown fox jumps over the lazy dog";
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(Crc32c(Crc32c(s.data(), cut), s.data() + cut, s.size() - cut),
              Crc32c(s.data(), s.size()));
  }
}

TEST(Crc32cTest, HardwareAndPortableAgree) {
  raft::SeededRandom rng(9);
  std::string data(20000, '\0');
  for (char& c : data) c = static_cast<char>(rng.Next());
  for (size_t off = 0; off < 9; ++off) {
    for (size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 767u, 768u, 769u, 1000u,
                       1536u, 4090u, 19990u}) {
      const uint32_t portable =
          internal::Crc32cPortable(5, data.data() + off, len);
      uint32_t hw = 0;
      if (internal::Crc32cHardware(5, data.data() + off, len, &hw)) {
        EXPECT_EQ(hw, portable) << off << " " << len;
      }
      EXPECT_EQ(Crc32c(5, data.data() + off, len), portable);
    }
  }
}

}  // namespace
}  // namespace quorate::storage
