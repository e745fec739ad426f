#include "raft/validate.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quorate::raft {
namespace {

absl::Status Refuse(const Message& m, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      MessageType_IsValid(m.type()) ? MessageType_Name(m.type()) : "message",
      " from member ", m.from(), ": ", why));
}

absl::Status ValidateEntries(const Message& m) {
  if (m.entries_size() == 0) return absl::OkStatus();
  if (m.type() != MESSAGE_TYPE_APPEND) return Refuse(m, "carries entries");
  if (m.index() + static_cast<uint64_t>(m.entries_size()) > kMaxIndex) {
    return Refuse(m, "entries beyond the largest index");
  }
  uint64_t prev_term = m.log_term();
  for (int i = 0; i < m.entries_size(); ++i) {
    const Entry& e = m.entries(i);
    const uint64_t want = m.index() + 1 + static_cast<uint64_t>(i);
    if (e.index() != want) {
      return Refuse(m, absl::StrCat("entry ", i, " has index ", e.index(),
                                    ", not ", want));
    }
    if (e.term() < prev_term || e.term() > m.term()) {
      return Refuse(
          m, absl::StrCat("entry ", e.index(), " has term ", e.term(),
                          ", outside [", prev_term, ", ", m.term(), "]"));
    }
    prev_term = e.term();
    switch (e.type()) {
      case ENTRY_TYPE_NORMAL:
        break;
      case ENTRY_TYPE_EMPTY:
        if (!e.data().empty()) {
          return Refuse(m,
                        absl::StrCat("empty entry ", e.index(), " has data"));
        }
        break;
      case ENTRY_TYPE_CONF_CHANGE: {
        ConfChange change;
        if (!change.ParseFromString(e.data())) {
          return Refuse(m, absl::StrCat("configuration entry ", e.index(),
                                        " is unreadable"));
        }
        if (absl::Status s = ValidateConfChange(change); !s.ok()) {
          return Refuse(m, absl::StrCat("configuration entry ", e.index(), ": ",
                                        s.message()));
        }
        break;
      }
      default:
        return Refuse(m, absl::StrCat("entry ", e.index(), " has unknown type ",
                                      static_cast<int>(e.type())));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateSnapshotChunk(const Message& m) {
  const SnapshotChunk& chunk = m.snapshot();
  const SnapshotMetadata& md = chunk.metadata();
  // At index 0 only a cluster's initial configuration, which a member
  // added at runtime gets from its leader (raft.cc, HandleAppendResponse).
  if (md.index() == 0 &&
      (md.conf_state().voters_size() == 0 || md.term() != 0)) {
    return Refuse(m,
                  "snapshot at index 0 without a configuration or with a "
                  "term");
  }
  if (md.term() > m.term()) {
    return Refuse(m, absl::StrCat("snapshot term ", md.term(),
                                  " is after the message's term ", m.term()));
  }
  if (absl::Status s = ValidateSnapshotMetadata(md); !s.ok()) {
    return Refuse(m, s.message());
  }
  if (chunk.offset() > chunk.total_size() ||
      chunk.data().size() > chunk.total_size() - chunk.offset()) {
    return Refuse(
        m, absl::StrCat("snapshot chunk at ", chunk.offset(), " of ",
                        chunk.data().size(), " bytes overruns the snapshot's ",
                        chunk.total_size()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateConfState(const ConfState& state) {
  if (state.voters_size() == 0) return absl::InvalidArgumentError("no voters");
  std::vector<uint64_t> ids(state.voters().begin(), state.voters().end());
  ids.insert(ids.end(), state.learners().begin(), state.learners().end());
  std::sort(ids.begin(), ids.end());
  if (ids.front() == 0) {
    return absl::InvalidArgumentError("member id 0 is reserved");
  }
  if (auto dup = std::adjacent_find(ids.begin(), ids.end()); dup != ids.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("member ", *dup, " is listed twice"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSnapshotMetadata(const SnapshotMetadata& md) {
  if (md.index() > kMaxIndex || md.term() > kMaxTerm) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot index ", md.index(), " or term ", md.term(),
                     " is out of range"));
  }
  if (md.index() > 0 && md.term() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot at index ", md.index(), " has term 0"));
  }
  // A member added at runtime starts with no configuration at all (index
  // 0, no voters) and learns it from its leader.
  if (md.index() == 0 && md.conf_state().voters_size() == 0 &&
      md.conf_state().learners_size() == 0) {
    return absl::OkStatus();
  }
  if (absl::Status s = ValidateConfState(md.conf_state()); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("snapshot configuration: ", s.message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateConfChange(const ConfChange& change) {
  if (change.type() == CONF_CHANGE_TYPE_UNSPECIFIED ||
      !ConfChangeType_IsValid(change.type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown change type ", static_cast<int>(change.type())));
  }
  if (change.member_id() == 0) {
    return absl::InvalidArgumentError("member id 0 is reserved");
  }
  return absl::OkStatus();
}

absl::Status ValidateMessage(const Message& m) {
  // Types a peer sends. TRANSFER_LEADER is reserved (never sent).
  switch (m.type()) {
    case MESSAGE_TYPE_APPEND:
    case MESSAGE_TYPE_APPEND_RESPONSE:
    case MESSAGE_TYPE_PRE_VOTE:
    case MESSAGE_TYPE_PRE_VOTE_RESPONSE:
    case MESSAGE_TYPE_VOTE:
    case MESSAGE_TYPE_VOTE_RESPONSE:
    case MESSAGE_TYPE_HEARTBEAT:
    case MESSAGE_TYPE_HEARTBEAT_RESPONSE:
    case MESSAGE_TYPE_SNAPSHOT:
    case MESSAGE_TYPE_SNAPSHOT_RESPONSE:
    case MESSAGE_TYPE_READ_INDEX:
    case MESSAGE_TYPE_READ_INDEX_RESPONSE:
    case MESSAGE_TYPE_TIMEOUT_NOW:
      break;
    default:
      return Refuse(m,
                    absl::StrCat("unknown type ", static_cast<int>(m.type())));
  }
  if (m.from() == 0 || m.to() == 0) return Refuse(m, "member id 0");
  if (m.term() > kMaxTerm) {
    return Refuse(m, absl::StrCat("term ", m.term(), " is beyond ", kMaxTerm));
  }
  if (m.log_term() > m.term()) {
    return Refuse(m, absl::StrCat("log term ", m.log_term(), " is after term ",
                                  m.term()));
  }
  for (uint64_t index :
       {m.index(), m.commit(), m.reject_hint_index(), m.term_start()}) {
    if (index > kMaxIndex) {
      return Refuse(m, absl::StrCat("index ", index, " is beyond ", kMaxIndex));
    }
  }
  if (m.reject_hint_term() > kMaxTerm) {
    return Refuse(m, absl::StrCat("hint term ", m.reject_hint_term(),
                                  " is beyond ", kMaxTerm));
  }
  if (m.transfer() && m.type() != MESSAGE_TYPE_VOTE &&
      m.type() != MESSAGE_TYPE_PRE_VOTE) {
    return Refuse(m, "the transfer flag on a message that is not a vote");
  }
  if (absl::Status s = ValidateEntries(m); !s.ok()) return s;
  if (m.has_snapshot() && m.type() == MESSAGE_TYPE_SNAPSHOT) {
    if (absl::Status s = ValidateSnapshotChunk(m); !s.ok()) return s;
  } else if (m.type() == MESSAGE_TYPE_SNAPSHOT) {
    return Refuse(m, "no snapshot chunk");
  } else if (m.has_snapshot() && m.type() != MESSAGE_TYPE_SNAPSHOT_RESPONSE) {
    return Refuse(m, "carries a snapshot chunk");
  }
  return absl::OkStatus();
}

}  // namespace quorate::raft
