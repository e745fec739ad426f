#include "chaos/linearizability.h"

#include <algorithm>
#include <map>
#include <unordered_set>

namespace quorate::chaos {
namespace {

// One key's history: values interned as small integers (0 = absent).
struct Op {
  bool is_write;
  int value;
  int64_t call;
  int64_t ret;
  int expected = -1;       // a compare-and-set's; -1: a plain read or write
  bool succeeded = false;  // a compare-and-set's, when its outcome is known
};

struct Event {
  int op;
  bool is_call;
  int64_t time;
  int prev;
  int next;
  int match;  // index of the other event of the same op
};

struct CacheKey {
  std::vector<uint64_t> bits;
  int state;
  bool operator==(const CacheKey& o) const {
    return state == o.state && bits == o.bits;
  }
};

struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const {
    uint64_t h = 1469598103934665603ULL ^ static_cast<uint64_t>(k.state);
    for (uint64_t w : k.bits) {
      h ^= w;
      h *= 1099511628211ULL;
    }
    return static_cast<size_t>(h);
  }
};

bool Step(const Op& op, int state, int* next) {
  if (op.expected >= 0) {
    const bool holds = state == op.expected;
    *next = holds ? op.value : state;
    // Unknown outcome: whatever the register held where it is placed.
    if (op.ret == RegisterOp::kNever) return true;
    return holds == op.succeeded;
  }
  if (op.is_write) {
    *next = op.value;
    return true;
  }
  *next = state;
  return op.value == state;
}

bool CheckKey(const std::vector<Op>& ops) {
  const int n = static_cast<int>(ops.size());
  if (n == 0) return true;
  // Events in time order; at equal times calls come first (such operations
  // are treated as concurrent).
  std::vector<Event> events;
  events.reserve(2 * ops.size() + 1);
  for (int i = 0; i < n; ++i) {
    events.push_back(Event{i, true, ops[i].call, 0, 0, 0});
    events.push_back(Event{i, false, ops[i].ret, 0, 0, 0});
  }
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) {
                     if (a.time != b.time) return a.time < b.time;
                     return a.is_call && !b.is_call;
                   });
  // Index 0 of `list` is the head sentinel; event k sits at k + 1.
  const int size = static_cast<int>(events.size());
  std::vector<int> call_of(n), ret_of(n);
  for (int k = 0; k < size; ++k) {
    (events[k].is_call ? call_of : ret_of)[events[k].op] = k + 1;
  }
  std::vector<Event> list(size + 1);
  list[0] = Event{-1, false, 0, -1, size > 0 ? 1 : -1, -1};
  for (int k = 0; k < size; ++k) {
    Event e = events[k];
    e.prev = k;
    e.next = k + 2 <= size ? k + 2 : -1;
    e.match = e.is_call ? ret_of[e.op] : call_of[e.op];
    list[k + 1] = e;
  }
  auto lift = [&](int call) {
    Event& c = list[call];
    list[c.prev].next = c.next;
    if (c.next >= 0) list[c.next].prev = c.prev;
    Event& r = list[c.match];
    list[r.prev].next = r.next;
    if (r.next >= 0) list[r.next].prev = r.prev;
  };
  auto unlift = [&](int call) {
    Event& c = list[call];
    Event& r = list[c.match];
    list[r.prev].next = c.match;
    if (r.next >= 0) list[r.next].prev = c.match;
    list[c.prev].next = call;
    if (c.next >= 0) list[c.next].prev = call;
  };

  std::vector<uint64_t> linearized((n + 63) / 64, 0);
  std::unordered_set<CacheKey, CacheKeyHash> cache;
  struct Frame {
    int call;
    int state;
  };
  std::vector<Frame> stack;
  int state = 0;
  int entry = list[0].next;
  while (list[0].next >= 0) {
    if (entry < 0) return false;  // cannot happen: a return ends the list
    const Event& e = list[entry];
    if (e.is_call) {
      int next_state = 0;
      if (Step(ops[e.op], state, &next_state)) {
        linearized[e.op / 64] |= 1ULL << (e.op % 64);
        if (cache.insert(CacheKey{linearized, next_state}).second) {
          stack.push_back(Frame{entry, state});
          state = next_state;
          lift(entry);
          entry = list[0].next;
          continue;
        }
        linearized[e.op / 64] &= ~(1ULL << (e.op % 64));
      }
      entry = e.next;
    } else {
      // An operation returned before it could be linearized: backtrack.
      if (stack.empty()) return false;
      const Frame f = stack.back();
      stack.pop_back();
      const int op = list[f.call].op;
      linearized[op / 64] &= ~(1ULL << (op % 64));
      state = f.state;
      unlift(f.call);
      entry = list[f.call].next;
    }
  }
  return true;
}

}  // namespace

LinearizabilityResult CheckLinearizable(
    const std::vector<RegisterOp>& history) {
  std::map<std::string, std::vector<const RegisterOp*>> by_key;
  for (const RegisterOp& op : history) by_key[op.key].push_back(&op);
  for (const auto& [key, key_ops] : by_key) {
    std::map<std::string, int> values{{"", 0}};
    std::vector<Op> ops;
    ops.reserve(key_ops.size());
    for (const RegisterOp* op : key_ops) {
      auto intern = [&values](const std::string& v) {
        return values.emplace(v, static_cast<int>(values.size())).first->second;
      };
      Op o{op->is_write, intern(op->value), op->call, op->ret};
      if (op->is_cas) {
        o.expected = intern(op->expected);
        o.succeeded = op->cas_succeeded;
      }
      ops.push_back(o);
    }
    if (!CheckKey(ops)) return LinearizabilityResult{false, key, ops.size()};
  }
  return LinearizabilityResult{};
}

}  // namespace quorate::chaos
