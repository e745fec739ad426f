// The generated wire and disk formats: they build, round-trip, and keep the
// compatibility rules written in the .proto files.
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <string>

#include "wire/peer.grpc.pb.h"
#include "wire/raft.pb.h"
#include "wire/storage.pb.h"

namespace quorate {
namespace {

raft::Message MakeAppend() {
  raft::Message m;
  m.set_type(raft::MESSAGE_TYPE_APPEND);
  m.set_from(1);
  m.set_to(2);
  m.set_term(7);
  m.set_log_term(6);
  m.set_index(41);
  m.set_commit(40);
  for (uint64_t i = 42; i <= 44; ++i) {
    raft::Entry* e = m.add_entries();
    e->set_term(7);
    e->set_index(i);
    e->set_data(std::string(100, static_cast<char>('a' + i % 26)));
  }
  return m;
}

TEST(ProtoTest, RaftMessage_RoundTrips) {
  const raft::Message in = MakeAppend();
  std::string bytes;
  ASSERT_TRUE(in.SerializeToString(&bytes));
  raft::Message out;
  ASSERT_TRUE(out.ParseFromString(bytes));
  EXPECT_EQ(out.type(), raft::MESSAGE_TYPE_APPEND);
  EXPECT_EQ(out.term(), 7u);
  ASSERT_EQ(out.entries_size(), 3);
  EXPECT_EQ(out.entries(2).index(), 44u);
  EXPECT_EQ(out.entries(2).data(), in.entries(2).data());
  EXPECT_EQ(out.SerializeAsString(), bytes);
}

// A newer member may add fields. An older one must parse the message, keep
// what it knows and pass the rest through unchanged.
TEST(ProtoTest, RaftMessage_ToleratesUnknownFieldsFromNewerVersions) {
  std::string bytes = MakeAppend().SerializeAsString();
  // Field 1000, varint 5: tag = (1000 << 3) | 0 = 8000 = 0xC0 0x3E.
  bytes += std::string("\xC0\x3E\x05", 3);
  raft::Message out;
  ASSERT_TRUE(out.ParseFromString(bytes));
  EXPECT_EQ(out.entries_size(), 3);
  EXPECT_EQ(out.SerializeAsString(), bytes);
}

TEST(ProtoTest, StorageRecords_RoundTrip) {
  storage::SnapshotHeader in;
  in.set_format_version(1);
  in.set_cluster_id("demo");
  in.mutable_metadata()->set_index(1000);
  in.mutable_metadata()->set_term(3);
  in.mutable_metadata()->mutable_conf_state()->add_voters(1);
  in.mutable_metadata()->mutable_conf_state()->add_learners(4);
  in.set_data_size(4096);
  in.set_data_crc32c(0xdeadbeef);
  storage::SnapshotHeader out;
  ASSERT_TRUE(out.ParseFromString(in.SerializeAsString()));
  EXPECT_EQ(out.metadata().conf_state().learners(0), 4u);
  EXPECT_EQ(out.data_crc32c(), 0xdeadbeefu);
}

// Frame types are one byte on disk; they must stay small and stable.
TEST(ProtoTest, RecordType_ValuesAreStable) {
  EXPECT_EQ(storage::RECORD_TYPE_SEGMENT_HEADER, 1);
  EXPECT_EQ(storage::RECORD_TYPE_ENTRY, 2);
  EXPECT_EQ(storage::RECORD_TYPE_HARD_STATE, 3);
  EXPECT_EQ(storage::RECORD_TYPE_TRUNCATE, 4);
  const auto* d = storage::RecordType_descriptor();
  for (int i = 0; i < d->value_count(); ++i) {
    EXPECT_LT(d->value(i)->number(), 256) << d->value(i)->name();
  }
}

TEST(ProtoTest, PeerService_IsOneBidirectionalStream) {
  // Through the file's descriptor: a static library links the generated
  // code (and registers it) only when something refers to it.
  const auto* service =
      peer::PeerFrame::descriptor()->file()->FindServiceByName("Peer");
  ASSERT_NE(service, nullptr);
  const auto* stream = service->FindMethodByName("Stream");
  ASSERT_NE(stream, nullptr);
  EXPECT_TRUE(stream->client_streaming());
  EXPECT_TRUE(stream->server_streaming());
  // The generated gRPC stub exists and names the method the same way.
  EXPECT_STREQ(peer::Peer::service_full_name(), "quorate.peer.Peer");
}

}  // namespace
}  // namespace quorate
