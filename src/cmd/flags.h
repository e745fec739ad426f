// cmd/flags.h: command-line flags in absl's syntax for the binaries.
//
// absl's own flag library exits 1 on a bad flag; the contracts say 2, and
// want one clear line. So the binaries parse with this instead:
//   --name=value, --name value, -name=value; booleans as --name,
//   --name=true|false and --noname; "--" ends the flags; anything else is
//   positional.
#ifndef QUORATE_CMD_FLAGS_H_
#define QUORATE_CMD_FLAGS_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace quorate::cmd {

struct Flags {
  std::map<std::string, std::string> values;
  std::set<std::string> set_booleans;  // booleans given as true
  std::vector<std::string> positional;
  // How many positional arguments came before a "--" (all of them if none
  // did): those after it are a command line of their own.
  size_t before_dash_dash = 0;
  bool dash_dash = false;

  std::string Get(const std::string& name, const std::string& def = "") const;
  bool Has(const std::string& name) const { return values.count(name) > 0; }
  bool Bool(const std::string& name) const {
    return set_booleans.count(name) > 0;
  }
  // A positive duration such as 50ms or 1.5s; INVALID_ARGUMENT otherwise.
  absl::StatusOr<absl::Duration> Duration(const std::string& name,
                                          absl::Duration def) const;
};

// INVALID_ARGUMENT with one line ("unknown flag --x") on a bad command line.
absl::StatusOr<Flags> ParseFlags(int argc, char** argv,
                                 const std::set<std::string>& valued,
                                 const std::set<std::string>& booleans);

}  // namespace quorate::cmd

#endif  // QUORATE_CMD_FLAGS_H_
