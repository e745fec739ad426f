#include "storage/mem_fs.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace quorate::storage::testing {
namespace {

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

class MemDirLock final : public DirLock {
 public:
  MemDirLock(std::shared_ptr<std::set<std::string>> locks, std::string path)
      : locks_(std::move(locks)), path_(std::move(path)) {}
  ~MemDirLock() override { locks_->erase(path_); }

 private:
  std::shared_ptr<std::set<std::string>> locks_;
  std::string path_;
};

}  // namespace

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(MemFileSystem* fs, std::shared_ptr<MemFileSystem::FileData> f,
                  std::string path)
      : fs_(fs), f_(std::move(f)), path_(std::move(path)) {}
  absl::Status WriteAt(uint64_t offset, absl::string_view data) override {
    return fs_->Write(f_, path_, offset, data);
  }
  absl::Status Sync() override { return fs_->Sync(f_, path_); }

 private:
  MemFileSystem* fs_;
  std::shared_ptr<MemFileSystem::FileData> f_;
  std::string path_;
};

absl::Status MemFileSystem::CreateDir(const std::string& dir) {
  dirs_.insert(dir);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> MemFileSystem::ListDir(
    const std::string& dir) {
  if (dirs_.count(dir) == 0) {
    return absl::NotFoundError(absl::StrCat("list directory ", dir));
  }
  std::vector<std::string> out;
  for (const auto& [path, f] : names_) {
    if (DirOf(path) == dir) out.push_back(path.substr(dir.size() + 1));
  }
  return out;
}

absl::StatusOr<std::string> MemFileSystem::ReadFile(const std::string& path) {
  auto it = names_.find(path);
  if (it == names_.end()) return absl::NotFoundError("open " + path);
  return it->second->data;
}

absl::StatusOr<std::unique_ptr<WritableFile>> MemFileSystem::OpenWritable(
    const std::string& path, bool create, uint64_t preallocate) {
  auto it = names_.find(path);
  if (create) {
    if (it != names_.end()) return absl::AlreadyExistsError("create " + path);
    it = names_.emplace(path, std::make_shared<FileData>()).first;
  } else if (it == names_.end()) {
    return absl::NotFoundError("open " + path);
  }
  if (preallocate > it->second->data.size()) {
    if (write_budget_ >= 0 &&
        static_cast<int64_t>(preallocate - it->second->data.size()) >
            write_budget_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("preallocate ", path, ": No space left on device"));
    }
    it->second->data.resize(preallocate, '\0');
  }
  return std::unique_ptr<WritableFile>(
      new MemWritableFile(this, it->second, path));
}

absl::Status MemFileSystem::Write(const std::shared_ptr<FileData>& f,
                                  const std::string& path, uint64_t offset,
                                  absl::string_view data) {
  if (fail_writes_) {
    return absl::InternalError("write " + path + ": Input/output error");
  }
  size_t n = data.size();
  bool full = false;
  if (write_budget_ >= 0 && static_cast<int64_t>(n) > write_budget_) {
    n = static_cast<size_t>(write_budget_);
    full = true;
  }
  if (offset + n > f->data.size()) f->data.resize(offset + n, '\0');
  std::copy(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n),
            f->data.begin() + static_cast<std::ptrdiff_t>(offset));
  if (write_budget_ >= 0) write_budget_ -= static_cast<int64_t>(n);
  if (full) {
    return absl::ResourceExhaustedError("write " + path +
                                        ": No space left on device");
  }
  return absl::OkStatus();
}

absl::Status MemFileSystem::Sync(const std::shared_ptr<FileData>& f,
                                 const std::string& path) {
  if (fail_syncs_) {
    return absl::InternalError("fdatasync " + path + ": Input/output error");
  }
  ++syncs_;
  f->durable = f->data;
  return absl::OkStatus();
}

absl::Status MemFileSystem::Rename(const std::string& from,
                                   const std::string& to) {
  auto it = names_.find(from);
  if (it == names_.end()) return absl::NotFoundError("rename " + from);
  names_[to] = it->second;
  names_.erase(from);
  return absl::OkStatus();
}

absl::Status MemFileSystem::Remove(const std::string& path) {
  names_.erase(path);
  return absl::OkStatus();
}

absl::Status MemFileSystem::SyncDir(const std::string& dir) {
  if (fail_syncs_) {
    return absl::InternalError("fsync " + dir + ": Input/output error");
  }
  ++syncs_;
  for (auto it = durable_names_.begin(); it != durable_names_.end();) {
    it = DirOf(it->first) == dir ? durable_names_.erase(it) : std::next(it);
  }
  for (const auto& [path, f] : names_) {
    if (DirOf(path) == dir) durable_names_[path] = f;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DirLock>> MemFileSystem::Lock(
    const std::string& path) {
  if (!locks_->insert(path).second) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data directory is in use by another process (lock ", path, ")"));
  }
  return std::unique_ptr<DirLock>(new MemDirLock(locks_, path));
}

void MemFileSystem::Crash() {
  names_ = durable_names_;
  for (auto& [path, f] : names_) f->data = f->durable;
  locks_->clear();
}

void MemFileSystem::CrashTorn(const std::function<uint64_t(uint64_t)>& choose) {
  for (auto& [path, f] : durable_names_) {
    // The unsynced changes lie between the first and last byte where the
    // current contents differ from the durable ones.
    const std::string& now = f->data;
    std::string& disk = f->durable;
    const size_t n = std::max(now.size(), disk.size());
    size_t first = 0;
    while (first < n && first < now.size() && first < disk.size() &&
           now[first] == disk[first]) {
      ++first;
    }
    if (first == n) continue;
    size_t last = n;  // one past the last differing byte
    while (last > first && last <= now.size() && last <= disk.size() &&
           now[last - 1] == disk[last - 1]) {
      --last;
    }
    const size_t cut = first + static_cast<size_t>(choose(last - first));
    if (disk.size() < std::min(cut, now.size())) {
      disk.resize(std::min(cut, now.size()), '\0');
    }
    std::copy(
        now.begin() + static_cast<std::ptrdiff_t>(first),
        now.begin() + static_cast<std::ptrdiff_t>(std::min(cut, now.size())),
        disk.begin() + static_cast<std::ptrdiff_t>(first));
  }
  Crash();
}

std::unique_ptr<MemFileSystem> MemFileSystem::Clone() const {
  auto out = std::make_unique<MemFileSystem>();
  std::map<const FileData*, std::shared_ptr<FileData>> copies;
  auto copy = [&](const std::shared_ptr<FileData>& f) {
    auto& c = copies[f.get()];
    if (c == nullptr) c = std::make_shared<FileData>(*f);
    return c;
  };
  for (const auto& [path, f] : names_) out->names_[path] = copy(f);
  for (const auto& [path, f] : durable_names_) {
    out->durable_names_[path] = copy(f);
  }
  out->dirs_ = dirs_;
  return out;
}

MemFileSystem::FileData* MemFileSystem::File(const std::string& path) {
  auto it = names_.find(path);
  return it == names_.end() ? nullptr : it->second.get();
}

std::vector<std::string> MemFileSystem::Paths() const {
  std::vector<std::string> out;
  for (const auto& [path, f] : names_) out.push_back(path);
  return out;
}

StorageOptions MemStorageOptions(MemFileSystem* fs, uint64_t segment_bytes) {
  StorageOptions o;
  o.dir = "/data";
  o.fs = fs;
  o.prepare_segments_ahead = false;
  o.segment_bytes = segment_bytes;
  o.cluster_id = "c1";
  return o;
}

raft::EntryPtr RandomEntry(uint64_t index, uint64_t term,
                           raft::SeededRandom* rng, uint64_t min_bytes,
                           uint64_t spread) {
  raft::Entry e;
  e.set_index(index);
  e.set_term(term);
  std::string data(min_bytes + rng->Uniform(spread), '\0');
  for (char& c : data) c = static_cast<char>('a' + rng->Uniform(26));
  e.set_data(data);
  return std::make_shared<const raft::Entry>(std::move(e));
}

}  // namespace quorate::storage::testing
