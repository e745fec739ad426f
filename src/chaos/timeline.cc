#include "chaos/timeline.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace quorate::chaos {
namespace {

constexpr double kLeft = 110, kWidth = 900, kRow = 34, kTop = 40;

std::string Escape(const std::string& s) {
  return absl::StrReplaceAll(
      s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

const char* RoleColor(const std::string& role) {
  if (role == "leader") return "#2e7d32";
  if (role == "follower") return "#90caf9";
  if (role == "candidate") return "#fb8c00";
  if (role == "pre_candidate") return "#ffcc80";
  return "#bdbdbd";
}

}  // namespace

std::string TimelineHtml(const TimelineInput& in) {
  const double span =
      static_cast<double>(std::max<int64_t>(1, in.end_ns - in.t0_ns));
  auto x = [&](int64_t t) {
    return kLeft + kWidth * std::clamp(static_cast<double>(t - in.t0_ns) / span,
                                       0.0, 1.0);
  };
  const int n = static_cast<int>(in.members.size());
  const double ops_top = kTop + n * kRow + 10;
  const double height =
      ops_top + 60 + 20 * static_cast<double>(in.nemeses.size()) + 60;
  std::string svg = absl::StrFormat(
      "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
      "font-family='sans-serif' font-size='12'>\n",
      static_cast<int>(kLeft + kWidth + 20), static_cast<int>(height));
  // Nemesis bands behind everything, numbered; the legend below says what.
  int k = 0;
  for (const Period& p : in.nemeses) {
    ++k;
    const double x0 = x(p.start_ns),
                 x1 = x(p.end_ns == 0 ? in.end_ns : p.end_ns);
    absl::StrAppendFormat(
        &svg,
        "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' "
        "fill='#ef9a9a' opacity='0.35'><title>%s</title></rect>\n"
        "<text x='%.1f' y='%.1f' fill='#c62828'>%d</text>\n",
        x0, kTop - 18, std::max(1.0, x1 - x0), ops_top + 50 - kTop + 18,
        Escape(p.label), x0 + 2, kTop - 6, k);
  }
  // Member rows: role segments from the event log.
  std::map<std::string, std::vector<const Event*>> by_id;
  for (const Event& e : in.events) by_id[e.id].push_back(&e);
  for (int i = 0; i < n; ++i) {
    const double y = kTop + i * kRow;
    const std::string id = in.members[i].substr(0, in.members[i].find(' '));
    absl::StrAppendFormat(&svg, "<text x='4' y='%.1f'>%s</text>\n", y + 17,
                          Escape(in.members[i]));
    std::vector<const Event*> list = by_id[id];
    std::sort(list.begin(), list.end(),
              [](const Event* a, const Event* b) { return a->t_ns < b->t_ns; });
    std::string role;
    int64_t since = 0;
    std::string mode;
    int64_t mode_since = 0;
    auto role_seg = [&](int64_t until) {
      if (role.empty()) return;
      absl::StrAppendFormat(&svg,
                            "<rect x='%.1f' y='%.1f' width='%.1f' height='18' "
                            "fill='%s'><title>%s %s</title></rect>\n",
                            x(since), y + 4, std::max(0.5, x(until) - x(since)),
                            RoleColor(role), id, role);
    };
    auto mode_seg = [&](int64_t until) {
      if (mode != "paused") return;
      absl::StrAppendFormat(&svg,
                            "<rect x='%.1f' y='%.1f' width='%.1f' height='5' "
                            "fill='#b71c1c'><title>%s paused</title></rect>\n",
                            x(mode_since), y + 24,
                            std::max(0.5, x(until) - x(mode_since)), id);
    };
    for (const Event* e : list) {
      if (e->event == "role") {
        role_seg(e->t_ns);
        role = e->role;
        since = e->t_ns;
      } else if (e->event == "mode") {
        mode_seg(e->t_ns);
        mode = e->mode;
        mode_since = e->t_ns;
      }
    }
    role_seg(in.end_ns);
    mode_seg(in.end_ns);
    for (const Period& o : in.outages) {
      if (o.member != i) continue;
      const double x0 = x(o.start_ns),
                   x1 = x(o.end_ns == 0 ? in.end_ns : o.end_ns);
      const char* fill = o.label == "kill"    ? "#424242"
                         : o.label == "pause" ? "#757575"
                                              : "none";
      absl::StrAppendFormat(
          &svg,
          "<rect x='%.1f' y='%.1f' width='%.1f' height='18' fill='%s' "
          "stroke='#000' stroke-dasharray='3,2'><title>%s %s</title></rect>\n",
          x0, y + 4, std::max(1.0, x1 - x0), fill, id, Escape(o.label));
    }
  }
  // Successful operations per 250 ms.
  const int64_t bucket = 250'000'000;
  std::map<int64_t, int> ok, bad;
  for (const Op& op : in.history) {
    if (op.client < 0) continue;
    (op.outcome == Op::Outcome::kOk
         ? ok
         : bad)[(op.return_ns - in.t0_ns) / bucket]++;
  }
  int most = 1;
  for (const auto& [b, c] : ok) most = std::max(most, c);
  absl::StrAppendFormat(&svg, "<text x='4' y='%.1f'>ops ok / 250ms</text>\n",
                        ops_top + 30);
  for (const auto& [b, c] : ok) {
    const double h = 40.0 * c / most;
    absl::StrAppendFormat(
        &svg,
        "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='#546e7a'>"
        "<title>%d ok, %d not</title></rect>\n",
        x(in.t0_ns + b * bucket), ops_top + 45 - h,
        std::max(1.0,
                 x(in.t0_ns + (b + 1) * bucket) - x(in.t0_ns + b * bucket) - 1),
        h, c, bad[b]);
  }
  // Time axis.
  const double axis = ops_top + 50;
  for (int64_t s = 0; s * 1'000'000'000 <= in.end_ns - in.t0_ns; ++s) {
    if (span > 60e9 && s % 10 != 0) continue;
    absl::StrAppendFormat(
        &svg, "<text x='%.1f' y='%.1f' fill='#555'>%ds</text>\n",
        x(in.t0_ns + s * 1'000'000'000), axis + 14, static_cast<int>(s));
  }
  k = 0;
  for (const Period& p : in.nemeses) {
    absl::StrAppendFormat(&svg,
                          "<text x='4' y='%.1f' fill='#c62828'>%d: %s</text>\n",
                          axis + 34 + 20 * k, k + 1, Escape(p.label));
    ++k;
  }
  svg += "</svg>\n";
  return absl::StrCat(
      "<!doctype html>\n<html><head><meta charset='utf-8'><title>",
      Escape(in.title), "</title></head>\n<body><h3>", Escape(in.title),
      "</h3>\n<p>Rows: each member's role from its event log (green leader, "
      "light blue follower, orange candidate, light orange pre-candidate); a "
      "thin dark red bar under a row while the member is paused; dashed boxes "
      "while it was killed (dark), stopped (grey) or running on a skewed clock "
      "(empty). Red bands: nemesis periods, numbered as listed below. Bottom: "
      "operations that succeeded per 250 ms.</p>\n",
      svg, "</body></html>\n");
}

}  // namespace quorate::chaos
