#include "coord/lease_holder.h"

#include <algorithm>

namespace quorate::coord {

int64_t HolderWindow(int64_t ttl_ms, const HolderOptions& options) {
  const double rho = options.max_clock_drift;
  const double ttl_ns = static_cast<double>(ttl_ms) * 1e6;
  // Rounded down: never longer than the argument allows.
  return static_cast<int64_t>(ttl_ns * (1 - rho) / (1 + rho)) -
         options.margin_ns;
}

LeaseHolder::LeaseHolder(HolderOptions options, int64_t ttl_ms, int64_t sent_ns)
    : options_(options),
      window_ns_(HolderWindow(ttl_ms, options)),
      deadline_ns_(sent_ns + window_ns_),
      last_sent_answered_ns_(sent_ns) {}

uint64_t LeaseHolder::RenewalSent(int64_t now_ns) {
  const uint64_t cookie = next_cookie_++;
  sent_[cookie] = now_ns;
  // Renewals lost on the way are never answered: forget those sent more
  // than a window ago (their answers could extend nothing now anyway).
  while (!sent_.empty() && sent_.begin()->second + window_ns_ < now_ns) {
    sent_.erase(sent_.begin());
  }
  return cookie;
}

void LeaseHolder::Answered(uint64_t cookie, const absl::Status& status,
                           int64_t ttl_ms, int64_t now_ns) {
  auto it = sent_.find(cookie);
  if (it == sent_.end()) return;  // forgotten, or answered twice
  const int64_t sent = it->second;
  sent_.erase(it);
  if (absl::IsNotFound(status)) {
    ended_ = true;
    return;
  }
  if (!status.ok() || ended_) return;
  const int64_t from = options_.unsafe.deadline_from_reply ? now_ns : sent;
  window_ns_ = HolderWindow(ttl_ms, options_);
  deadline_ns_ = std::max(deadline_ns_, from + window_ns_);
  last_sent_answered_ns_ = std::max(last_sent_answered_ns_, sent);
}

int64_t LeaseHolder::NextRenewalAt() const {
  return last_sent_answered_ns_ + std::max<int64_t>(window_ns_ / 3, 1);
}

}  // namespace quorate::coord
