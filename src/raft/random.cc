#include "raft/random.h"

#include "util/check.h"

namespace quorate::raft {

uint64_t Random::Uniform(uint64_t n) {
  QUORATE_CHECK_GT(n, 0u);
  // Reject the top partial bucket so that the result is unbiased.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t v;
  do {
    v = Next();
  } while (v >= limit);
  return v % n;
}

uint64_t SeededRandom::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace quorate::raft
