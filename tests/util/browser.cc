#include "util/browser.h"

#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <filesystem>
#include <fstream>
#include <regex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "util/process.h"

namespace quorate::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

// A JSON string's text at `key` in `doc` (the first occurrence), with
// JSON's escapes undone; nullopt if absent.
std::optional<std::string> StringField(const std::string& doc,
                                       const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t at = doc.find(k);
  if (at == std::string::npos) return std::nullopt;
  at = doc.find('"', at + k.size());
  if (at == std::string::npos) return std::nullopt;
  std::string out;
  for (size_t i = at + 1; i < doc.size(); ++i) {
    char c = doc[i];
    if (c == '"') return out;
    if (c != '\\' || i + 1 == doc.size()) {
      out += c;
      continue;
    }
    char e = doc[++i];
    switch (e) {
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'r':
        out += '\r';
        break;
      case 'u': {
        const unsigned v = std::stoul(doc.substr(i + 1, 4), nullptr, 16);
        i += 4;
        if (v < 0x80) {
          out += static_cast<char>(v);
        } else if (v < 0x800) {
          out += static_cast<char>(0xc0 | (v >> 6));
          out += static_cast<char>(0x80 | (v & 0x3f));
        } else {
          out += static_cast<char>(0xe0 | (v >> 12));
          out += static_cast<char>(0x80 | ((v >> 6) & 0x3f));
          out += static_cast<char>(0x80 | (v & 0x3f));
        }
        break;
      }
      default:
        out += e;
    }
  }
  return std::nullopt;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// GET on the DevTools port. (Chromium answers only requests whose Host is
// an IP address or localhost, so util/process.h's HttpGet will not do.)
std::string DevToolsGet(const std::string& port, const std::string& target) {
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    asio::ip::tcp::resolver resolver(io);
    stream.connect(resolver.resolve("127.0.0.1", port));
    http::request<http::empty_body> req(http::verb::get, target, 11);
    req.set(http::field::host, "127.0.0.1:" + port);
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return res.body();
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

struct Browser::Impl {
  std::unique_ptr<Process> chromium;  // killed when reset
  std::string dir;
  asio::io_context io;
  std::unique_ptr<websocket::stream<asio::ip::tcp::socket>> ws;
  int next_id = 0;
};

std::string Browser::Binary() {
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

absl::StatusOr<std::unique_ptr<Browser>> Browser::Open(const std::string& url,
                                                       int width, int height) {
  if (Binary().empty()) return absl::NotFoundError("no chromium binary");
  std::unique_ptr<Browser> b(new Browser());
  b->impl_ = std::make_unique<Impl>();
  char tmpl[] = "/tmp/quorate-browser-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp");
  b->impl_->dir = tmpl;
  const std::string log = b->impl_->dir + "/chromium.log";
  // Port 0: Chromium picks the DevTools port and writes it to
  // DevToolsActivePort in its profile. --no-sandbox: CI runs as root.
  std::vector<std::string> args = {
      Binary(),
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-extensions",
      "--remote-debugging-port=0",
      "--remote-allow-origins=*",
      "--user-data-dir=" + b->impl_->dir + "/profile",
      absl::StrCat("--window-size=", width, ",", height),
      url};
  b->impl_->chromium = std::make_unique<Process>(args, log);
  if (!b->impl_->chromium->started()) {
    return absl::InternalError("chromium did not start");
  }
  const std::string port_file = b->impl_->dir + "/profile/DevToolsActivePort";
  std::string port, path;
  const absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until) {
    std::ifstream f(port_file);
    if (std::getline(f, port) && std::getline(f, path) && !port.empty()) break;
    port.clear();
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (port.empty()) {
    return absl::UnavailableError("chromium wrote no DevTools port: " +
                                  ReadAll(log));
  }
  // The page's own target (not the browser's): from /json/list.
  std::string targets;
  size_t page = std::string::npos;
  while (absl::Now() < until) {
    targets = DevToolsGet(port, "/json/list");
    page = targets.find("\"type\": \"page\"");
    if (page != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  std::optional<std::string> ws_url =
      page == std::string::npos
          ? std::nullopt
          : StringField(targets.substr(page), "webSocketDebuggerUrl");
  if (!ws_url) return absl::UnavailableError("no page target: " + targets);
  const std::string prefix = "ws://127.0.0.1:" + port;
  if (ws_url->rfind(prefix, 0) != 0) {
    return absl::InternalError("unexpected DevTools URL " + *ws_url);
  }
  try {
    asio::ip::tcp::resolver resolver(b->impl_->io);
    b->impl_->ws = std::make_unique<websocket::stream<asio::ip::tcp::socket>>(
        b->impl_->io);
    asio::connect(b->impl_->ws->next_layer(),
                  resolver.resolve("127.0.0.1", port));
    b->impl_->ws->handshake("127.0.0.1:" + port, ws_url->substr(prefix.size()));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("DevTools: ", e.what()));
  }
  return b;
}

Browser::~Browser() {
  if (impl_ == nullptr) return;
  if (impl_->ws != nullptr) {
    beast::error_code ignored;
    impl_->ws->next_layer().close(ignored);
  }
  impl_->chromium.reset();
  std::error_code ec;
  std::filesystem::remove_all(impl_->dir, ec);
}

absl::StatusOr<std::string> Browser::Call(const std::string& method,
                                          const std::string& params) {
  const int id = ++impl_->next_id;
  const std::string msg = absl::StrCat("{\"id\": ", id, ", \"method\": \"",
                                       method, "\", \"params\": ", params, "}");
  try {
    impl_->ws->write(asio::buffer(msg));
    const std::string want = absl::StrCat("{\"id\":", id, ",");
    while (true) {
      beast::flat_buffer buffer;
      impl_->ws->read(buffer);
      std::string reply = beast::buffers_to_string(buffer.data());
      if (reply.rfind(want, 0) == 0) return reply;  // events are skipped
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("DevTools: ", e.what()));
  }
}

absl::StatusOr<std::string> Browser::Eval(const std::string& expression) {
  absl::StatusOr<std::string> r =
      Call("Runtime.evaluate",
           absl::StrCat("{\"expression\": ", JsonString(expression),
                        ", \"returnByValue\": true}"));
  if (!r.ok()) return r.status();
  if (r->find("\"exceptionDetails\"") != std::string::npos) {
    return absl::InvalidArgumentError("the expression threw: " + *r);
  }
  std::optional<std::string> v = StringField(*r, "value");
  if (!v) return absl::InvalidArgumentError("no string value: " + *r);
  return *v;
}

absl::Status Browser::Screenshot(const std::string& path) {
  absl::StatusOr<std::string> r =
      Call("Page.captureScreenshot", "{\"format\": \"png\"}");
  if (!r.ok()) return r.status();
  std::optional<std::string> data = StringField(*r, "data");
  std::string png;
  if (!data || !absl::Base64Unescape(*data, &png)) {
    return absl::InternalError("no screenshot in " + r->substr(0, 200));
  }
  std::ofstream(path, std::ios::binary) << png;
  return absl::OkStatus();
}

}  // namespace quorate::testing
