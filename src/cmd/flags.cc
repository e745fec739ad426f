#include "cmd/flags.h"

#include "absl/strings/str_cat.h"

namespace quorate::cmd {

std::string Flags::Get(const std::string& name, const std::string& def) const {
  auto it = values.find(name);
  return it == values.end() ? def : it->second;
}

absl::StatusOr<absl::Duration> Flags::Duration(const std::string& name,
                                               absl::Duration def) const {
  auto it = values.find(name);
  if (it == values.end()) return def;
  absl::Duration d;
  if (!absl::ParseDuration(it->second, &d) || d <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, "='", it->second,
                     "' is not a positive duration such as 50ms or 1.5s"));
  }
  return d;
}

absl::StatusOr<Flags> ParseFlags(int argc, char** argv,
                                 const std::set<std::string>& valued,
                                 const std::set<std::string>& booleans) {
  Flags f;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (flags_done || arg.empty() || arg[0] != '-' || arg == "-") {
      f.positional.push_back(arg);
      if (!f.dash_dash) f.before_dash_dash = f.positional.size();
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      f.dash_dash = true;
      f.before_dash_dash = f.positional.size();
      continue;
    }
    arg = arg.substr(arg.rfind("--", 0) == 0 ? 2 : 1);
    std::string name = arg;
    std::string value;
    const size_t eq = arg.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (booleans.count(name) > 0) {
      if (!has_value || value == "true") {
        f.set_booleans.insert(name);
      } else if (value == "false") {
        f.set_booleans.erase(name);
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", name, " takes true or false, not '", value, "'"));
      }
      continue;
    }
    if (!has_value && name.rfind("no", 0) == 0 &&
        booleans.count(name.substr(2)) > 0) {
      f.set_booleans.erase(name.substr(2));
      continue;
    }
    if (valued.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", name, " needs a value"));
      }
      value = argv[++i];
    }
    f.values[name] = value;
  }
  return f;
}

}  // namespace quorate::cmd
