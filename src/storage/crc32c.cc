#include "storage/crc32c.h"

#include <array>
#include <cstring>

namespace quorate::storage {
namespace internal {
namespace {

constexpr uint32_t kPolynomial = 0x82f63b78;  // reflected Castagnoli

// Slicing-by-8 tables, built at compile time.
constexpr std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPolynomial : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (size_t s = 1; s < 8; ++s) {
      t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
  return t;
}
constexpr auto kTables = MakeTables();

// The hardware loop runs three independent streams over adjacent blocks of
// this many bytes and joins them; one stream waits on each crc32's latency.
constexpr size_t kStreamBytes = 256;

// Tables of the linear map "extend a raw CRC register by kStreamBytes zero
// bytes": Shift(r) is the register after r is followed by that many zeros.
// Since extending by data D from r gives Shift(r) ^ (D extended from 0),
// blocks summed from 0 in parallel join as Shift(a) ^ b.
constexpr std::array<std::array<uint32_t, 256>, 4> MakeShiftTables() {
  std::array<uint32_t, 32> basis{};
  for (int bit = 0; bit < 32; ++bit) {
    uint32_t r = uint32_t{1} << bit;
    for (size_t i = 0; i < kStreamBytes; ++i) {
      r = (r >> 8) ^ kTables[0][r & 0xff];
    }
    basis[static_cast<size_t>(bit)] = r;
  }
  std::array<std::array<uint32_t, 256>, 4> t{};
  for (size_t k = 0; k < 4; ++k) {
    for (uint32_t v = 0; v < 256; ++v) {
      uint32_t r = 0;
      for (size_t bit = 0; bit < 8; ++bit) {
        if ((v >> bit) & 1) r ^= basis[8 * k + bit];
      }
      t[k][v] = r;
    }
  }
  return t;
}
constexpr auto kShift = MakeShiftTables();

inline uint32_t Shift(uint32_t r) {
  return kShift[0][r & 0xff] ^ kShift[1][(r >> 8) & 0xff] ^
         kShift[2][(r >> 16) & 0xff] ^ kShift[3][r >> 24];
}

}  // namespace

uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = ~crc;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);  // little-endian hosts only (x86, arm64)
    word ^= c;
    c = kTables[7][word & 0xff] ^ kTables[6][(word >> 8) & 0xff] ^
        kTables[5][(word >> 16) & 0xff] ^ kTables[4][(word >> 24) & 0xff] ^
        kTables[3][(word >> 32) & 0xff] ^ kTables[2][(word >> 40) & 0xff] ^
        kTables[1][(word >> 48) & 0xff] ^ kTables[0][word >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = (c >> 8) ^ kTables[0][(c ^ *p++) & 0xff];
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t Sse42(uint32_t crc,
                                                        const void* data,
                                                        size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t c = ~crc;
  while (n >= 3 * kStreamBytes) {
    uint64_t b = 0;
    uint64_t d = 0;
    for (size_t i = 0; i < kStreamBytes; i += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p + i, 8);
      std::memcpy(&w1, p + kStreamBytes + i, 8);
      std::memcpy(&w2, p + 2 * kStreamBytes + i, 8);
      c = __builtin_ia32_crc32di(c, w0);
      b = __builtin_ia32_crc32di(b, w1);
      d = __builtin_ia32_crc32di(d, w2);
    }
    c = Shift(Shift(static_cast<uint32_t>(c)) ^ static_cast<uint32_t>(b)) ^
        static_cast<uint32_t>(d);
    p += 3 * kStreamBytes;
    n -= 3 * kStreamBytes;
  }
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<uint32_t>(c);
  while (n-- > 0) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return ~c32;
}
#endif

bool Crc32cHardware(uint32_t crc, const void* data, size_t n, uint32_t* out) {
#if defined(__x86_64__)
  static const bool available = __builtin_cpu_supports("sse4.2");
  if (available) {
    *out = Sse42(crc, data, n);
    return true;
  }
#endif
  (void)crc;
  (void)data;
  (void)n;
  (void)out;
  return false;
}

}  // namespace internal

uint32_t Crc32c(uint32_t crc, const void* data, size_t n) {
  uint32_t out;
  if (internal::Crc32cHardware(crc, data, n, &out)) return out;
  return internal::Crc32cPortable(crc, data, n);
}

}  // namespace quorate::storage
