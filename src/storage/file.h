// storage/file.h: the file operations storage needs, behind an interface.
//
// Production code uses PosixFileSystem(). Tests and the simulator inject an
// in-memory file system with a crash model, or a wrapper that injects
// ENOSPC and EIO. Every path is absolute or relative to the process's
// working directory; nothing here caches file contents.
#ifndef QUORATE_STORAGE_FILE_H_
#define QUORATE_STORAGE_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace quorate::storage {

// A file opened for writing at explicit offsets.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual absl::Status WriteAt(uint64_t offset, absl::string_view data) = 0;
  // fdatasync: data written so far survives a crash.
  virtual absl::Status Sync() = 0;
};

// Held while a data directory is in use; released when destroyed.
class DirLock {
 public:
  virtual ~DirLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates `dir` if missing (one level).
  virtual absl::Status CreateDir(const std::string& dir) = 0;
  // Names (not paths) of the entries in `dir`.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(
      const std::string& dir) = 0;
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Opens `path` for writing, creating it (empty) if `create`. With
  // `preallocate` > 0 the file is extended to at least that many bytes of
  // zeros, actually written (not just reserved with fallocate): writes
  // into reserved but unwritten blocks make every fdatasync also commit
  // metadata, which halves the sync rate on ext4.
  virtual absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(
      const std::string& path, bool create, uint64_t preallocate) = 0;
  virtual absl::Status Rename(const std::string& from,
                              const std::string& to) = 0;
  virtual absl::Status Remove(const std::string& path) = 0;
  // Makes creations, renames and removals in `dir` durable.
  virtual absl::Status SyncDir(const std::string& dir) = 0;
  // An exclusive lock on `path` (created if missing) that another process
  // cannot take while it is held.
  virtual absl::StatusOr<std::unique_ptr<DirLock>> Lock(
      const std::string& path) = 0;
};

// The real file system. Stateless; shared by everyone.
FileSystem* PosixFileSystem();

std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace quorate::storage

#endif  // QUORATE_STORAGE_FILE_H_
