// storage/crc32c.h: CRC-32C (Castagnoli), the checksum of every record.
//
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
// run time) and a portable table-driven version otherwise; both give the
// same values. Debian packages no CRC32C library.
#ifndef QUORATE_STORAGE_CRC32C_H_
#define QUORATE_STORAGE_CRC32C_H_

#include <cstddef>
#include <cstdint>

namespace quorate::storage {

// Extends `crc` (0 to start) with `n` bytes at `data`.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) {
  return Crc32c(0, data, n);
}

namespace internal {
uint32_t Crc32cPortable(uint32_t crc, const void* data, size_t n);
// Returns false when the CPU has no crc32 instruction.
bool Crc32cHardware(uint32_t crc, const void* data, size_t n, uint32_t* out);
}  // namespace internal

}  // namespace quorate::storage

#endif  // QUORATE_STORAGE_CRC32C_H_
