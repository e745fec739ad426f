#include "admin/admin_server.h"

// Asio with GCC 12 in C++20 mode needs <utility> first.
#include <utility>
//
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <thread>
#include <tuple>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "util/thread_name.h"

namespace quorate::admin {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

}  // namespace

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

namespace {

std::string Quote(absl::string_view s) { return JsonQuote(s); }

const char* Bool(bool b) { return b ? "true" : "false"; }

// One connection: read a request, answer, repeat while the client keeps
// the connection alive; every read has a deadline.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // `open` counts the sessions alive (the server's thread only).
  Session(tcp::socket socket, std::function<MemberView()>* status,
          std::function<std::string()>* ui_state, size_t* open)
      : stream_(std::move(socket)),
        status_(status),
        ui_state_(ui_state),
        open_(open) {
    ++*open_;
  }
  ~Session() { --*open_; }

  void Read() {
    request_ = {};
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, request_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (!ec) self->Answer();
                     });
  }

 private:
  void Answer() {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(request_.version());
    res->keep_alive(request_.keep_alive());
    res->set(http::field::server, "quorate");
    const std::string target(request_.target());
    const std::string path = target.substr(0, target.find('?'));
    if (request_.method() != http::verb::get &&
        request_.method() != http::verb::head) {
      res->result(http::status::method_not_allowed);
      res->set(http::field::content_type, "text/plain");
      res->body() = "only GET is served here\n";
    } else if (path == "/healthz") {
      res->result(http::status::ok);
      res->set(http::field::content_type, "text/plain");
      res->body() = "ok\n";
    } else if (path == "/readyz") {
      const MemberView v = (*status_)();
      res->result(v.guard.active ? http::status::ok
                                 : http::status::service_unavailable);
      res->set(http::field::content_type, "text/plain");
      res->body() = v.guard.active ? "active\n"
                                   : "paused: " + v.guard.pause_reason + "\n";
    } else if (path == "/metrics") {
      res->result(http::status::ok);
      res->set(http::field::content_type, "text/plain; version=0.0.4");
      res->body() = MetricsText((*status_)());
    } else if (path == "/status") {
      res->result(http::status::ok);
      res->set(http::field::content_type, "application/json");
      res->body() = StatusJson((*status_)()) + "\n";
    } else if ((path == "/ui" || path == "/ui/") && *ui_state_) {
      res->result(http::status::ok);
      res->set(http::field::content_type, "text/html; charset=utf-8");
      res->set(http::field::cache_control, "no-store");
      res->body() = std::string(DashboardPage());
    } else if (path == "/ui/state" && *ui_state_) {
      res->result(http::status::ok);
      res->set(http::field::content_type, "application/json");
      res->set(http::field::cache_control, "no-store");
      res->body() = (*ui_state_)();
    } else {
      res->result(http::status::not_found);
      res->set(http::field::content_type, "text/plain");
      res->body() =
          "not found; try /healthz, /readyz, /status, /metrics or /ui\n";
    }
    res->prepare_payload();
    stream_.expires_after(std::chrono::seconds(10));
    http::async_write(
        stream_, *res,
        [self = shared_from_this(), res](beast::error_code ec, size_t) {
          if (ec || !res->keep_alive()) {
            beast::error_code ignored;
            self->stream_.socket().shutdown(tcp::socket::shutdown_send,
                                            ignored);
            return;
          }
          self->Read();
        });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  std::function<MemberView()>* const status_;
  std::function<std::string()>* const ui_state_;
  size_t* const open_;
};

class AdminServerImpl final : public AdminServer {
 public:
  AdminServerImpl(std::function<MemberView()> status,
                  std::function<std::string()> ui_state)
      : status_(std::move(status)),
        ui_state_(std::move(ui_state)),
        acceptor_(io_) {}
  ~AdminServerImpl() override { Stop(); }

  absl::Status Bind(const std::string& address) {
    const size_t colon = address.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin address '", address, "' is not HOST:PORT"));
    }
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(address.substr(0, colon), ec);
    if (ec) {
      return absl::InvalidArgumentError(absl::StrCat(
          "admin address '", address, "' does not name an IP address"));
    }
    const tcp::endpoint ep(ip, static_cast<uint16_t>(port));
    acceptor_.open(ep.protocol(), ec);
    // SO_REUSEADDR only (a restart may bind while old connections linger
    // in TIME_WAIT). Never SO_REUSEPORT: two processes must not share one
    // admin port. Tests bind port 0 and read the port back.
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on admin address '", address, "': ", ec.message()));
    }
    address_ = absl::StrCat(address.substr(0, colon), ":",
                            acceptor_.local_endpoint().port());
    Accept();
    thread_ = std::thread([this] {
      SetThreadName("q-admin");
      io_.run();
    });
    return absl::OkStatus();
  }

  std::string address() const override { return address_; }
  uint64_t accept_errors() const override { return accept_errors_.load(); }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || stopped_.load()) return;
      if (ec) {
        // Out of file descriptors (EMFILE, ENFILE), or out of memory: the
        // connection stays in the backlog. Try again after a pause, longer
        // each time, rather than never again or in a tight loop.
        backoff_ = std::min(std::max(backoff_ * 2, kMinBackoff), kMaxBackoff);
        accept_errors_.fetch_add(1);
        retry_.expires_after(backoff_);
        retry_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec) Accept();
        });
        return;
      }
      backoff_ = std::chrono::milliseconds(0);
      if (open_ >= kMaxSessions) {
        // Over the cap: close at once; the port stays responsive for the
        // sessions already open.
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        std::make_shared<Session>(std::move(socket), &status_, &ui_state_,
                                  &open_)
            ->Read();
      }
      Accept();
    });
  }

  static constexpr size_t kMaxSessions = 64;
  static constexpr std::chrono::milliseconds kMinBackoff{10};
  static constexpr std::chrono::milliseconds kMaxBackoff{1000};

  std::function<MemberView()> status_;
  std::function<std::string()> ui_state_;
  // Sessions alive; the server's thread only. Before io_: sessions its
  // handlers still hold count down when it is destroyed.
  size_t open_ = 0;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_{io_};
  std::chrono::milliseconds backoff_{0};
  std::atomic<uint64_t> accept_errors_{0};
  std::string address_;
  std::thread thread_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

std::string StatusJson(const MemberView& view) {
  const node::NodeStatus& s = view.node;
  const guard::GuardStatus& g = view.guard;
  std::string peers;
  for (const node::PeerStatus& p : s.peers) {
    if (!peers.empty()) peers += ", ";
    absl::StrAppend(
        &peers, "{\"id\": ", Quote(p.name), ", \"zone\": ", Quote(p.zone),
        ", \"address\": ", Quote(p.address), ", \"voter\": ", Bool(p.voter),
        ", \"reachable\": ", Bool(p.reachable),
        ", \"last_contact_ms\": ", p.last_contact_ms,
        ", \"version\": ", Quote(p.version), "}");
  }
  return absl::StrCat(
      "{\"id\": ", Quote(s.name), ", \"zone\": ", Quote(s.zone),
      ", \"cluster_id\": ", Quote(s.cluster_id),
      ", \"address\": ", Quote(s.listen_address),
      ", \"role\": ", Quote(raft::RoleName(s.role)), ", \"term\": ", s.term,
      ", \"leader_id\": ", Quote(s.leader), ", \"version\": ", Quote(s.version),
      ", \"voter\": ", Bool(s.voter),
      ", \"mode\": ", Quote(g.active ? "active" : "paused"),
      ", \"pause_reason\": ", Quote(g.pause_reason), ", \"active_for_ms\": ",
      g.active
          ? std::max<int64_t>(0, (g.active_until_ns - view.now_ns) / 1'000'000)
          : 0,
      ", \"fencing_token\": {\"term\": ", g.token.term,
      ", \"index\": ", g.token.index, "}", ", \"pauses\": ", g.pauses,
      ", \"commit_index\": ", s.commit_index,
      ", \"applied_index\": ", s.applied_index,
      ", \"last_log_index\": ", s.last_log_index,
      ", \"snapshot_index\": ", s.snapshot_index,
      ", \"proposals\": {\"waiting\": ", s.proposals_waiting,
      ", \"shed\": ", s.proposals_shed,
      ", \"apply_latency_ms\": ", s.proposal_latency_us / 1000, "}",
      ", \"revision\": ", view.revision,
      ", \"compacted_revision\": ", view.compacted_revision,
      ", \"watch\": {\"streams\": ", view.watches.streams,
      ", \"watchers\": ", view.watches.watchers,
      ", \"cut_off\": ", view.watches.cut_off, "}",
      ", \"error\": ", Quote(s.error.ok() ? "" : s.error.message()),
      ", \"peers\": [", peers, "]}");
}

std::string MetricsText(const MemberView& view) {
  const node::NodeStatus& s = view.node;
  const guard::GuardStatus& g = view.guard;
  std::string out;
  auto metric = [&out](const char* name, const char* type, const char* help) {
    absl::StrAppend(&out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ",
                    type, "\n");
  };
  auto seconds = [](int64_t ns) {
    return absl::StrCat(static_cast<double>(ns) / 1e9);
  };
  metric("quorate_role", "gauge", "1 for this member's current role");
  for (raft::Role r :
       {raft::Role::kFollower, raft::Role::kPreCandidate,
        raft::Role::kCandidate, raft::Role::kLeader, raft::Role::kLearner}) {
    absl::StrAppend(&out, "quorate_role{role=\"", raft::RoleName(r), "\"} ",
                    r == s.role ? 1 : 0, "\n");
  }
  metric("quorate_term", "gauge", "current Raft term");
  absl::StrAppend(&out, "quorate_term ", s.term, "\n");
  metric("quorate_active", "gauge",
         "1 while the member is active (inside its window), 0 while paused");
  absl::StrAppend(&out, "quorate_active ", g.active ? 1 : 0, "\n");
  metric("quorate_active_window_remaining_seconds", "gauge",
         "what is left of the active window; 0 while paused");
  absl::StrAppend(
      &out, "quorate_active_window_remaining_seconds ",
      seconds(g.active ? std::max<int64_t>(0, g.active_until_ns - view.now_ns)
                       : 0),
      "\n");
  metric("quorate_quorum_contact_age_seconds", "gauge",
         "since the last renewal a quorum confirmed was sent; -1 if never");
  absl::StrAppend(&out, "quorate_quorum_contact_age_seconds ",
                  g.last_contact_ns > 0
                      ? seconds(view.now_ns - g.last_contact_ns)
                      : std::string("-1"),
                  "\n");
  metric("quorate_pauses_total", "counter", "pauses since the member started");
  absl::StrAppend(&out, "quorate_pauses_total ", g.pauses, "\n");
  metric("quorate_fencing_token_term", "gauge",
         "term of the latest window's token");
  absl::StrAppend(&out, "quorate_fencing_token_term ", g.token.term, "\n");
  metric("quorate_commit_index", "gauge", "highest committed log index known");
  absl::StrAppend(&out, "quorate_commit_index ", s.commit_index, "\n");
  metric("quorate_applied_index", "gauge", "highest log index applied");
  absl::StrAppend(&out, "quorate_applied_index ", s.applied_index, "\n");
  metric("quorate_last_log_index", "gauge", "last index in the log");
  absl::StrAppend(&out, "quorate_last_log_index ", s.last_log_index, "\n");
  metric("quorate_proposals_waiting", "gauge",
         "proposals waiting on this leader, before the log and in it");
  absl::StrAppend(&out, "quorate_proposals_waiting ", s.proposals_waiting,
                  "\n");
  metric("quorate_proposals_shed_total", "counter",
         "proposals refused or answered unproposed because they would not "
         "be applied before their deadline");
  absl::StrAppend(&out, "quorate_proposals_shed_total ", s.proposals_shed,
                  "\n");
  metric("quorate_proposal_apply_seconds", "gauge",
         "moving average of a proposal's time from the log to applied");
  absl::StrAppend(&out, "quorate_proposal_apply_seconds ",
                  static_cast<double>(s.proposal_latency_us) / 1e6, "\n");
  metric("quorate_watchers", "gauge", "watchers on this member's streams");
  absl::StrAppend(&out, "quorate_watchers ", view.watches.watchers, "\n");
  metric("quorate_watchers_cut_off_total", "counter",
         "watchers cut off for falling behind (--watch_buffer_bytes)");
  absl::StrAppend(&out, "quorate_watchers_cut_off_total ", view.watches.cut_off,
                  "\n");
  metric("quorate_peer_reachable", "gauge",
         "1 while the stream to the peer is up");
  for (const node::PeerStatus& p : s.peers) {
    absl::StrAppend(&out, "quorate_peer_reachable{peer=", Quote(p.name), "} ",
                    p.reachable ? 1 : 0, "\n");
  }
  for (const auto& [name, help, field] :
       {std::tuple{"quorate_peer_messages_sent_total",
                   "messages sent to the peer",
                   &node::PeerStatus::messages_sent},
        std::tuple{"quorate_peer_messages_received_total",
                   "messages received from the peer",
                   &node::PeerStatus::messages_received},
        std::tuple{"quorate_peer_messages_dropped_total",
                   "messages to the peer dropped (queue full or link down)",
                   &node::PeerStatus::messages_dropped},
        std::tuple{"quorate_peer_messages_refused_total",
                   "messages from the peer refused as malformed or "
                   "contradicting this member's state (the stream ends)",
                   &node::PeerStatus::messages_refused}}) {
    metric(name, "counter", help);
    for (const node::PeerStatus& p : s.peers) {
      absl::StrAppend(&out, name, "{peer=", Quote(p.name), "} ", p.*field,
                      "\n");
    }
  }
  return out;
}

absl::StatusOr<std::unique_ptr<AdminServer>> AdminServer::Start(
    const std::string& address, std::function<MemberView()> status,
    std::function<std::string()> ui_state) {
  auto s =
      std::make_unique<AdminServerImpl>(std::move(status), std::move(ui_state));
  if (absl::Status st = s->Bind(address); !st.ok()) return st;
  return s;
}

}  // namespace quorate::admin
