// raft/random.h: the core's only source of randomness, injected.
//
// The core never draws its own randomness: a simulator seeds one generator
// and replays any run exactly. Distribution code is ours too, because the
// std:: distributions differ between standard libraries.
#ifndef QUORATE_RAFT_RANDOM_H_
#define QUORATE_RAFT_RANDOM_H_

#include <cstdint>

namespace quorate::raft {

class Random {
 public:
  virtual ~Random() = default;
  // A uniformly distributed 64-bit value.
  virtual uint64_t Next() = 0;

  // Uniform in [0, n). n must be > 0. Uses rejection so that every value is
  // equally likely, whatever n is.
  uint64_t Uniform(uint64_t n);
};

// SplitMix64 seeded generator: fast, small state, good enough statistics
// for timeouts and simulation choices; never for cryptography.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  uint64_t Next() override;

 private:
  uint64_t state_;
};

}  // namespace quorate::raft

#endif  // QUORATE_RAFT_RANDOM_H_
