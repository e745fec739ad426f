#include "coord/shard_assign.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <tuple>

namespace quorate::coord {
namespace {

constexpr uint64_t kMaxWeight = 65535;

uint64_t WeightOf(const ShardProcessor& p) {
  return std::clamp<uint64_t>(p.weight, 1, kMaxWeight);
}

// One of the things `total` is split among.
struct Part {
  uint64_t weight = 0;
  uint64_t owned = 0;  // shards it (or its processors) own now
  std::string key;     // zone name or processor id
};

// `total` split in proportion to weight: each part gets the whole part of
// its exact share, and the rest go one each to the largest remainders;
// among equal remainders first to a part that owns more than the whole
// part now (it would otherwise lose one), then to the smaller key. Fed
// its own result, the split gives the same again.
std::vector<uint32_t> Split(uint32_t total, const std::vector<Part>& parts) {
  std::vector<uint32_t> out(parts.size(), 0);
  uint64_t sum = 0;
  for (const Part& p : parts) sum += p.weight;
  if (sum == 0) return out;
  std::vector<uint64_t> remainder(parts.size());
  uint64_t given = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const uint64_t exact = uint64_t{total} * parts[i].weight;
    out[i] = static_cast<uint32_t>(exact / sum);
    remainder[i] = exact % sum;
    given += out[i];
  }
  std::vector<size_t> order(parts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::vector<uint8_t> above(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) above[i] = parts[i].owned > out[i];
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(remainder[b], above[b], parts[a].key) <
           std::tie(remainder[a], above[a], parts[b].key);
  });
  for (size_t k = 0; given < total; ++k, ++given) ++out[order[k]];
  return out;
}

}  // namespace

ShardAssignment AssignShards(uint32_t shards,
                             const std::vector<ShardProcessor>& processors,
                             const std::vector<std::string>& current) {
  ShardAssignment a;
  a.owner.assign(shards, std::string());
  a.quota.assign(processors.size(), 0);
  const std::string none;
  auto current_of = [&](uint32_t s) -> const std::string& {
    return s < current.size() ? current[s] : none;
  };

  std::map<std::string, size_t> by_id;
  for (size_t i = 0; i < processors.size(); ++i) {
    by_id.emplace(processors[i].id, i);  // ids are unique; the first counts
  }
  auto index_of = [&](const std::string& id) -> size_t {
    if (id.empty()) return processors.size();
    auto it = by_id.find(id);
    return it == by_id.end() ? processors.size() : it->second;
  };
  std::vector<uint64_t> owned(processors.size(), 0);
  for (uint32_t s = 0; s < shards; ++s) {
    const size_t i = index_of(current_of(s));
    if (i < processors.size()) ++owned[i];
  }

  // 1. Quotas: zones first, then the processors within each.
  std::map<std::string, std::vector<size_t>> zones;  // by name; ids sorted
  for (const auto& [id, i] : by_id) zones[processors[i].zone].push_back(i);
  std::vector<Part> zone_parts;
  for (const auto& [zone, members] : zones) {
    Part z;
    z.key = zone;
    for (size_t i : members) {
      z.weight += WeightOf(processors[i]);
      z.owned += owned[i];
    }
    zone_parts.push_back(std::move(z));
  }
  const std::vector<uint32_t> zone_quota = Split(shards, zone_parts);
  size_t zi = 0;
  for (const auto& [zone, members] : zones) {
    std::vector<Part> parts;
    for (size_t i : members) {
      parts.push_back(
          Part{WeightOf(processors[i]), owned[i], processors[i].id});
    }
    const std::vector<uint32_t> q = Split(zone_quota[zi++], parts);
    for (size_t k = 0; k < members.size(); ++k) a.quota[members[k]] = q[k];
  }

  // 2. Stay: current owners keep shards up to their quota.
  std::vector<uint32_t> kept(processors.size(), 0);
  std::vector<uint32_t> free;
  for (uint32_t s = 0; s < shards; ++s) {
    const size_t i = index_of(current_of(s));
    if (i < processors.size() && kept[i] < a.quota[i]) {
      a.owner[s] = processors[i].id;
      ++kept[i];
    } else {
      free.push_back(s);
    }
  }

  // 3. Move: the rest fill the processors still under quota, in id order.
  auto next = by_id.begin();
  for (uint32_t s : free) {
    while (next != by_id.end() && kept[next->second] >= a.quota[next->second]) {
      ++next;
    }
    if (next == by_id.end()) break;  // no processors at all
    a.owner[s] = next->first;
    ++kept[next->second];
  }
  for (uint32_t s = 0; s < shards; ++s) {
    if (a.owner[s] != current_of(s)) ++a.moved;
  }
  return a;
}

}  // namespace quorate::coord
