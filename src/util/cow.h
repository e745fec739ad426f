// util/cow.h: a value that one thread keeps changing while other threads
// read frozen views of it.
//
// The owner pins the value (cheap: a reference count) and hands the pin to
// another thread, which reads it at leisure. The owner's next change copies
// the value first if a pin may still be reading it, and from then on
// changes its own copy; the pinned value never changes. A change while
// nothing is pinned happens in place.
//
// get(), mutate() and pin() belong to the owner (or to whatever lock the
// owner holds while changing the value); a Pin may be read, moved and
// dropped on any thread.
#ifndef QUORATE_UTIL_COW_H_
#define QUORATE_UTIL_COW_H_

#include <atomic>
#include <memory>
#include <utility>

namespace quorate {

template <typename T>
class Cow {
  struct Node {
    Node() = default;
    explicit Node(const T& v) : value(v) {}
    explicit Node(T&& v) : value(std::move(v)) {}
    T value;
    std::atomic<int> pins{0};
  };

 public:
  // A frozen view; reading it needs no lock.
  class Pin {
   public:
    Pin() = default;
    Pin(Pin&& other) noexcept : node_(std::move(other.node_)) {}
    Pin& operator=(Pin&& other) noexcept {
      if (this != &other) {
        Release();
        node_ = std::move(other.node_);
      }
      return *this;
    }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    ~Pin() { Release(); }

    const T& operator*() const { return node_->value; }
    const T* operator->() const { return &node_->value; }

   private:
    friend class Cow;
    explicit Pin(std::shared_ptr<Node> node) : node_(std::move(node)) {
      node_->pins.fetch_add(1, std::memory_order_relaxed);
    }
    void Release() {
      // Release: every read through this pin happens before the owner's
      // next change in place (which loads the count with acquire).
      if (node_ != nullptr) node_->pins.fetch_sub(1, std::memory_order_release);
      node_.reset();
    }
    std::shared_ptr<Node> node_;
  };

  Cow() : node_(std::make_shared<Node>()) {}
  explicit Cow(T value) : node_(std::make_shared<Node>(std::move(value))) {}
  Cow(Cow&&) noexcept = default;
  Cow& operator=(Cow&&) noexcept = default;
  // A copy would share the value with its original: neither could change it.
  Cow(const Cow&) = delete;
  Cow& operator=(const Cow&) = delete;

  const T& get() const { return node_->value; }

  // The value, to change. Copies it first while a pin is held.
  T& mutate() {
    if (node_->pins.load(std::memory_order_acquire) != 0) {
      node_ = std::make_shared<Node>(node_->value);
    }
    return node_->value;
  }

  Pin pin() const { return Pin(node_); }

 private:
  std::shared_ptr<Node> node_;
};

}  // namespace quorate

#endif  // QUORATE_UTIL_COW_H_
