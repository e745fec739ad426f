// An in-memory FileSystem with a crash model and fault injection, for
// storage tests and the simulator.
//
// Crash model: what a reader sees is each file's current contents and the
// current directory entries. A file's contents survive a crash only up to
// its last Sync(); directory entries (creations, renames, removals) only up
// to the last SyncDir() of their directory. Crash() reverts to exactly
// that. Faults: a byte budget after which writes fail with
// RESOURCE_EXHAUSTED (disk full, the write partly applied), and syncs or
// writes that fail with an I/O error.
#ifndef QUORATE_TESTS_STORAGE_MEM_FS_H_
#define QUORATE_TESTS_STORAGE_MEM_FS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "raft/random.h"
#include "storage/file.h"
#include "storage/storage.h"

namespace quorate::storage::testing {

class MemFileSystem final : public FileSystem {
 public:
  struct FileData {
    std::string data;     // what readers see
    std::string durable;  // what survives a crash
  };

  absl::Status CreateDir(const std::string& dir) override;
  absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path) override;
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(
      const std::string& path, bool create, uint64_t preallocate) override;
  absl::Status Rename(const std::string& from, const std::string& to) override;
  absl::Status Remove(const std::string& path) override;
  absl::Status SyncDir(const std::string& dir) override;
  absl::StatusOr<std::unique_ptr<DirLock>> Lock(
      const std::string& path) override;

  // Loses everything not made durable. Locks are released (the process
  // died).
  void Crash();
  // Like Crash(), but each file keeps a prefix of its unsynced changes,
  // cut at a point chosen by `choose(n)` in [0, n]: a write torn by the
  // crash.
  void CrashTorn(const std::function<uint64_t(uint64_t)>& choose);
  // A deep copy (files are not shared), without locks.
  std::unique_ptr<MemFileSystem> Clone() const;

  // Direct access for tests: current contents (nullptr if absent).
  FileData* File(const std::string& path);
  std::vector<std::string> Paths() const;

  // Faults. Writes beyond `bytes` more bytes fail with RESOURCE_EXHAUSTED
  // after writing what fits; -1 turns the limit off.
  void SetWriteBudget(int64_t bytes) { write_budget_ = bytes; }
  void FailSyncs(bool fail) { fail_syncs_ = fail; }
  void FailWrites(bool fail) { fail_writes_ = fail; }
  uint64_t syncs() const { return syncs_; }

 private:
  friend class MemWritableFile;
  absl::Status Write(const std::shared_ptr<FileData>& f,
                     const std::string& path, uint64_t offset,
                     absl::string_view data);
  absl::Status Sync(const std::shared_ptr<FileData>& f,
                    const std::string& path);

  std::map<std::string, std::shared_ptr<FileData>> names_;
  std::map<std::string, std::shared_ptr<FileData>> durable_names_;
  std::set<std::string> dirs_;
  std::shared_ptr<std::set<std::string>> locks_ =
      std::make_shared<std::set<std::string>>();
  int64_t write_budget_ = -1;
  bool fail_syncs_ = false;
  bool fail_writes_ = false;
  uint64_t syncs_ = 0;
};

// Options for a Storage in "/data" on `fs` (cluster "c1"), without the
// background segment preparer: MemFileSystem is single-threaded.
StorageOptions MemStorageOptions(MemFileSystem* fs, uint64_t segment_bytes);

// An entry with `min_bytes` to `min_bytes + spread - 1` random letters.
raft::EntryPtr RandomEntry(uint64_t index, uint64_t term,
                           raft::SeededRandom* rng, uint64_t min_bytes,
                           uint64_t spread);

}  // namespace quorate::storage::testing

#endif  // QUORATE_TESTS_STORAGE_MEM_FS_H_
