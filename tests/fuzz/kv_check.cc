#include "kv_check.h"

#include <optional>

#include "util/check.h"
#include "wire/client.pb.h"

namespace quorate::fuzz {

std::string SnapshotNow(coord::KvStore& store) { return store.Snapshot()(); }

std::unique_ptr<coord::KvStore> CheckRoundTrip(const coord::KvStore& store,
                                               const std::string& snapshot) {
  auto copy = std::make_unique<coord::KvStore>();
  const absl::Status s = copy->Restore(snapshot);
  QUORATE_CHECK(s.ok()) << "a store's own snapshot does not restore: " << s;
  QUORATE_CHECK_EQ(copy->revision(), store.revision());
  QUORATE_CHECK_EQ(copy->sessions(), store.sessions());
  QUORATE_CHECK(SnapshotNow(*copy) == snapshot)
      << "a restored store snapshots to other bytes";

  client::KvSnapshot snap;
  QUORATE_CHECK(snap.ParseFromString(snapshot));
  for (const client::KvEntry& e : snap.entries()) {
    QUORATE_CHECK_GE(e.revision(), 1u)
        << "key '" << e.key() << "' has revision 0, which means absent";
    QUORATE_CHECK_LE(e.revision(), store.revision())
        << "key '" << e.key() << "' is newer than the store";
    const std::optional<coord::KvStore::Value> a = store.Get(e.key());
    const std::optional<coord::KvStore::Value> b = copy->Get(e.key());
    QUORATE_CHECK(a.has_value() && b.has_value());
    QUORATE_CHECK(a->value == e.value() && a->revision == e.revision());
    QUORATE_CHECK(b->value == e.value() && b->revision == e.revision());
  }
  return copy;
}

}  // namespace quorate::fuzz
