// tests/util/browser.h: headless Chromium (Debian's package) driven over
// the DevTools protocol, for tests of pages the members serve: open a
// page, evaluate JavaScript in it as it runs, take a screenshot.
#ifndef QUORATE_TESTS_UTIL_BROWSER_H_
#define QUORATE_TESTS_UTIL_BROWSER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace quorate::testing {

class Browser {
 public:
  // The Chromium binary; "" if there is none (tests skip, saying so).
  static std::string Binary();
  // Starts Chromium headless (its profile in a temporary directory) on
  // `url`, with a window of `width` x `height`.
  static absl::StatusOr<std::unique_ptr<Browser>> Open(const std::string& url,
                                                       int width = 1280,
                                                       int height = 1000);
  ~Browser();  // kills Chromium, removes its profile

  // Evaluates `expression` in the page; its value as a string (the
  // expression should produce one, e.g. with JSON.stringify).
  absl::StatusOr<std::string> Eval(const std::string& expression);
  // A PNG of the page as it is now, written to `path`.
  absl::Status Screenshot(const std::string& path);

 private:
  Browser() = default;
  absl::StatusOr<std::string> Call(const std::string& method,
                                   const std::string& params);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace quorate::testing

#endif  // QUORATE_TESTS_UTIL_BROWSER_H_
