// Copy on write: a pinned value never changes; an unpinned one changes in
// place.
#include "util/cow.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace quorate {
namespace {

TEST(CowTest, UnpinnedChangesHappenInPlace) {
  Cow<std::vector<int>> cow;
  const std::vector<int>* before = &cow.get();
  cow.mutate().push_back(1);
  EXPECT_EQ(&cow.get(), before);
  { Cow<std::vector<int>>::Pin pin = cow.pin(); }
  cow.mutate().push_back(2);  // the pin is gone: no copy
  EXPECT_EQ(&cow.get(), before);
  EXPECT_EQ(cow.get(), (std::vector<int>{1, 2}));
}

TEST(CowTest, APinnedValueNeverChanges) {
  Cow<std::vector<int>> cow;
  cow.mutate() = {1, 2, 3};
  Cow<std::vector<int>>::Pin pin = cow.pin();
  const std::vector<int>* pinned = &*pin;
  cow.mutate().push_back(4);
  EXPECT_NE(&cow.get(), pinned);  // copied
  EXPECT_EQ(*pin, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(cow.get(), (std::vector<int>{1, 2, 3, 4}));
  // Only the first change after the pin copies.
  const std::vector<int>* copy = &cow.get();
  cow.mutate().push_back(5);
  EXPECT_EQ(&cow.get(), copy);
  // A moved pin still holds the old value; the moved-from one holds none.
  Cow<std::vector<int>>::Pin moved = std::move(pin);
  EXPECT_EQ(moved->size(), 3u);
}

TEST(CowTest, ReadersOnOtherThreadsSeeTheValueTheyPinned) {
  Cow<std::vector<int>> cow;
  std::vector<std::thread> readers;
  std::vector<int> seen(50, -1);
  for (int i = 0; i < 50; ++i) {
    Cow<std::vector<int>>::Pin pin = cow.pin();
    readers.emplace_back([&seen, i, pin = std::move(pin)] {
      seen[static_cast<size_t>(i)] = static_cast<int>(pin->size());
    });
    cow.mutate().push_back(i);  // while the reader may be reading
  }
  for (std::thread& t : readers) t.join();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(seen[static_cast<size_t>(i)], i);
  EXPECT_EQ(cow.get().size(), 50u);
}

}  // namespace
}  // namespace quorate
