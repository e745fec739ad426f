#include "chaos/workload.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "util/clock.h"

namespace quorate::chaos {
namespace {

// Put and Get errors that mean the write was certainly not applied.
bool Refused(const absl::Status& s) {
  return absl::IsInvalidArgument(s) || absl::IsAborted(s) ||
         absl::IsResourceExhausted(s);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Workload>> Workload::Start(
    WorkloadOptions options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("the workload needs endpoints");
  }
  std::unique_ptr<Workload> w(new Workload(std::move(options)));
  const WorkloadOptions& o = w->options_;
  for (int c = 0; c < o.clients; ++c) {
    ClientOptions co;
    // Each starts at another member and follows the leader from there.
    for (size_t i = 0; i < o.endpoints.size(); ++i) {
      co.endpoints.push_back(o.endpoints[(c + i) % o.endpoints.size()]);
    }
    co.timeout = o.timeout;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(co);
    if (!client.ok()) return client.status();
    w->writers_.push_back(*std::move(client));
  }
  for (const std::string& e : o.endpoints) {
    ClientOptions co;
    co.endpoints = {e};
    co.timeout = o.timeout;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(co);
    if (!client.ok()) return client.status();
    w->readers_.push_back(*std::move(client));
  }
  for (int c = 0; c < o.clients; ++c) {
    w->threads_.emplace_back([w = w.get(), c] { w->Run(c); });
  }
  return w;
}

Workload::~Workload() { Stop(); }

void Workload::Stop() {
  stop_ = true;
  for (std::thread& t : threads_) t.join();
  threads_.clear();
}

void Workload::Record(Op op) {
  MutexLock lock(&mu_);
  history_.push_back(std::move(op));
}

void Workload::Run(int client) {
  std::mt19937_64 rng(std::random_device{}());
  const absl::Duration period = absl::Seconds(1) / options_.rate;
  absl::Time next = absl::Now();
  uint64_t seq = 0;
  const int members = static_cast<int>(readers_.size());
  while (!stop_.load()) {
    next += period;
    const absl::Duration wait = next - absl::Now();
    if (wait > absl::ZeroDuration()) absl::SleepFor(wait);
    if (next < absl::Now() - period) next = absl::Now();  // don't burst
    Op op;
    op.client = client;
    const int dice = std::uniform_int_distribution<int>(0, 9)(rng);
    const int key =
        std::uniform_int_distribution<int>(0, options_.keys - 1)(rng);
    ++seq;
    if (dice < 4) {
      op.type = Op::Type::kWrite;
      op.key = absl::StrCat("r/", key);
      op.value = absl::StrCat("c", client, "-", seq);
    } else if (dice < 8) {
      op.type = Op::Type::kRead;
      op.key = absl::StrCat("r/", key);
      op.member = std::uniform_int_distribution<int>(0, members - 1)(rng);
    } else {
      op.type = Op::Type::kPutOnce;
      op.key = absl::StrCat("u/", client, "/", seq);
      op.value = absl::StrCat("c", client, "-", seq);
    }
    op.call_ns = MonotonicNowNs();
    absl::Status s;
    if (op.type == Op::Type::kRead) {
      absl::StatusOr<KeyValue> kv =
          readers_[op.member]->Get(op.key, options_.stale_reads);
      if (kv.ok()) op.value = kv->value;
      s = absl::IsNotFound(kv.status()) ? absl::OkStatus() : kv.status();
    } else {
      s = writers_[client]->Put(op.key, op.value).status();
    }
    op.return_ns = MonotonicNowNs();
    if (s.ok()) {
      op.outcome = Op::Outcome::kOk;
    } else {
      op.error = std::string(s.message());
      op.outcome = Refused(s) || op.type == Op::Type::kRead
                       ? Op::Outcome::kFailed
                       : Op::Outcome::kUnknown;
    }
    Record(std::move(op));
  }
}

absl::Status Workload::FinalReads(absl::Duration patience) {
  std::vector<std::string> keys;
  for (int k = 0; k < options_.keys; ++k) keys.push_back(absl::StrCat("r/", k));
  for (const Op& op : History()) {
    if (op.type == Op::Type::kPutOnce && op.outcome == Op::Outcome::kOk) {
      keys.push_back(op.key);
    }
  }
  const absl::Time give_up = absl::Now() + patience;
  for (const std::string& key : keys) {
    while (true) {
      Op op;
      op.client = -1;
      op.type = Op::Type::kRead;
      op.key = key;
      op.call_ns = MonotonicNowNs();
      absl::StatusOr<KeyValue> kv = writers_[0]->Get(key);
      op.return_ns = MonotonicNowNs();
      if (kv.ok() || absl::IsNotFound(kv.status())) {
        if (kv.ok()) op.value = kv->value;
        op.outcome = Op::Outcome::kOk;
        Record(std::move(op));
        break;
      }
      if (absl::Now() > give_up) {
        return absl::UnavailableError(absl::StrCat(
            "the final read of '", key, "' found no leader for ",
            absl::FormatDuration(patience), ": ", kv.status().message()));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<Op> Workload::History() const {
  MutexLock lock(&mu_);
  return history_;
}

}  // namespace quorate::chaos
