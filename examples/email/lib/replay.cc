#include "replay.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "message.h"

namespace quorate_email {
namespace {

constexpr int64_t kOpen = std::numeric_limits<int64_t>::max();

void SkipSpace(absl::string_view s, size_t* i) {
  while (*i < s.size() &&
         (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\r' || s[*i] == '\n')) {
    ++*i;
  }
}

// A JSON string at s[*i] (the opening quote), unescaped.
absl::StatusOr<std::string> ParseString(absl::string_view s, size_t* i) {
  std::string out;
  ++*i;
  while (*i < s.size() && s[*i] != '"') {
    char c = s[(*i)++];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (*i >= s.size()) break;
    char e = s[(*i)++];
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
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'u': {
        uint32_t cp = 0;
        if (*i + 4 > s.size() || !absl::SimpleHexAtoi(s.substr(*i, 4), &cp)) {
          return absl::InvalidArgumentError("a bad \\u escape");
        }
        *i += 4;
        // Code points of the Basic Multilingual Plane, as UTF-8.
        if (cp < 0x80) {
          out += static_cast<char>(cp);
        } else if (cp < 0x800) {
          out += static_cast<char>(0xC0 | (cp >> 6));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
          out += static_cast<char>(0xE0 | (cp >> 12));
          out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
          out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        break;
      }
      default:
        out += e;  // \" \\ \/
    }
  }
  if (*i >= s.size()) return absl::InvalidArgumentError("an unended string");
  ++*i;
  return out;
}

// Skips a nested object or array at s[*i].
absl::Status SkipNested(absl::string_view s, size_t* i) {
  int depth = 0;
  while (*i < s.size()) {
    char c = s[*i];
    if (c == '"') {
      absl::StatusOr<std::string> ignored = ParseString(s, i);
      if (!ignored.ok()) return ignored.status();
      continue;
    }
    ++*i;
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') {
      if (--depth == 0) return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError("an unended object or array");
}

int64_t Int(const Fields& f, const std::string& key, int64_t def = 0) {
  auto it = f.find(key);
  int64_t v = def;
  if (it != f.end() && !absl::SimpleAtoi(it->second, &v)) {
    double d = 0;
    if (absl::SimpleAtod(it->second, &d)) v = static_cast<int64_t>(d);
  }
  return v;
}

std::string Str(const Fields& f, const std::string& key) {
  auto it = f.find(key);
  return it == f.end() ? "" : it->second;
}

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string Number(double v) {
  return v < 0 ? std::string("-") : absl::StrFormat("%.0f", v);
}

// Who owned which shard when: from "assigned" until "released", "lost"
// or "expired".
struct Tenure {
  std::string who;
  int64_t shard = 0;
  int64_t start = 0, end = kOpen;
};

std::vector<Tenure> Tenures(const std::vector<Fields>& events) {
  std::vector<Tenure> out;
  std::map<std::string, std::map<int64_t, size_t>> open;  // who -> shard
  for (const Fields& e : events) {
    const std::string who = Str(e, "who");
    const std::string ev = Str(e, "event");
    const int64_t t = Int(e, "t_mono_ns");
    if (ev == "assigned") {
      const int64_t shard = Int(e, "shard");
      if (open[who].count(shard)) continue;
      open[who][shard] = out.size();
      out.push_back(Tenure{who, shard, t, kOpen});
    } else if (ev == "released") {
      auto it = open[who].find(Int(e, "shard"));
      if (it == open[who].end()) continue;
      out[it->second].end = t;
      open[who].erase(it);
    } else if (ev == "lost" || ev == "expired" || ev == "start") {
      for (const auto& [shard, index] : open[who]) out[index].end = t;
      open[who].clear();
    }
  }
  return out;
}

// ---- the picture ----

struct Series {
  std::string name, color;
  std::vector<std::pair<int64_t, double>> points;  // (t_ns, value)
  bool steps = false;  // a step function (a count that holds until changed)
};

struct Chart {
  std::string title;
  std::vector<Series> series;
  double bound = -1;  // a horizontal line (a limit), if >= 0
};

struct Span {
  int64_t start = 0, end = 0;
  std::string label, color;
};

std::string Escape(absl::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string Svg(const std::vector<Chart>& charts,
                const std::vector<Span>& spans, int64_t t0, int64_t t1) {
  const double width = 1000, left = 60, right = 170, height = 130, gap = 40;
  const double plot_w = width - left - right;
  if (t1 <= t0) t1 = t0 + 1;
  auto x = [&](int64_t t) {
    return left +
           plot_w * static_cast<double>(t - t0) / static_cast<double>(t1 - t0);
  };
  const double total_h =
      static_cast<double>(charts.size()) * (height + gap) + 30;
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" "
      "height=\"%.0f\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n",
      width, total_h);
  for (size_t c = 0; c < charts.size(); ++c) {
    const Chart& chart = charts[c];
    const double top = static_cast<double>(c) * (height + gap) + 20;
    double ymax = chart.bound > 0 ? chart.bound * 1.1 : 1;
    for (const Series& s : chart.series) {
      for (const auto& p : s.points) ymax = std::max(ymax, p.second * 1.05);
    }
    auto y = [&](double v) { return top + height - height * v / ymax; };
    absl::StrAppendFormat(&svg,
                          "<text x=\"%.0f\" y=\"%.0f\" font-weight=\"bold\">%s"
                          "</text>\n",
                          left, top - 6, Escape(chart.title));
    for (const Span& sp : spans) {
      absl::StrAppendFormat(
          &svg,
          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.0f\" "
          "fill=\"%s\" opacity=\"0.18\"><title>%s</title></rect>\n",
          x(sp.start), top, std::max(1.0, x(sp.end) - x(sp.start)), height,
          sp.color, Escape(sp.label));
    }
    absl::StrAppendFormat(&svg,
                          "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" "
                          "height=\"%.0f\" fill=\"none\" stroke=\"#999\"/>\n",
                          left, top, plot_w, height);
    absl::StrAppendFormat(&svg,
                          "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"end\">%s"
                          "</text><text x=\"%.0f\" y=\"%.0f\" "
                          "text-anchor=\"end\">0</text>\n",
                          left - 4, top + 10, Number(ymax), left - 4,
                          top + height);
    if (chart.bound >= 0) {
      absl::StrAppendFormat(
          &svg,
          "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" "
          "stroke=\"#c00\" stroke-dasharray=\"4 3\"/><text x=\"%.0f\" "
          "y=\"%.1f\" fill=\"#c00\">bound %s</text>\n",
          left, left + plot_w, y(chart.bound), y(chart.bound),
          left + plot_w + 4, y(chart.bound) + 4, Number(chart.bound));
    }
    for (size_t k = 0; k < chart.series.size(); ++k) {
      const Series& s = chart.series[k];
      std::string pts;
      double last = 0;
      bool first = true;
      for (const auto& [t, v] : s.points) {
        if (s.steps && !first) {
          absl::StrAppendFormat(&pts, "%.1f,%.1f ", x(t), y(last));
        }
        absl::StrAppendFormat(&pts, "%.1f,%.1f ", x(t), y(v));
        last = v;
        first = false;
      }
      if (s.steps && !first) {
        absl::StrAppendFormat(&pts, "%.1f,%.1f ", x(t1), y(last));
      }
      absl::StrAppendFormat(&svg,
                            "<polyline fill=\"none\" stroke=\"%s\" "
                            "stroke-width=\"1.5\" points=\"%s\"/>\n",
                            s.color, pts);
      absl::StrAppendFormat(
          &svg, "<text x=\"%.0f\" y=\"%.0f\" fill=\"%s\">%s</text>\n",
          left + plot_w + 4, top + 12 + 13 * static_cast<double>(k), s.color,
          Escape(s.name));
    }
  }
  // The time axis, in seconds from the start.
  const double seconds = Ms(t1 - t0) / 1000;
  const double step = seconds > 600 ? 60 : seconds > 120 ? 20 : 10;
  for (double s = 0; s <= seconds; s += step) {
    const int64_t t = t0 + static_cast<int64_t>(s * 1e9);
    absl::StrAppendFormat(&svg,
                          "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" "
                          "fill=\"#555\">%.0fs</text>\n",
                          x(t), total_h - 8, s);
  }
  svg += "</svg>\n";
  return svg;
}

const std::vector<std::string>& Palette() {
  static const auto* const p = new std::vector<std::string>{
      "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"};
  return *p;
}

// Processed messages per second, in 1 s bins, of the processors `keep`
// accepts.
template <typename Keep>
Series Rate(const std::vector<ProcessedMessage>& processed, int64_t t0,
            int64_t t1, const std::string& name, const std::string& color,
            Keep keep) {
  const int64_t bin = 1'000'000'000;
  std::vector<double> counts(static_cast<size_t>((t1 - t0) / bin + 1), 0);
  for (const ProcessedMessage& m : processed) {
    if (m.processed_ns < t0 || m.processed_ns > t1 || !keep(m)) continue;
    counts[static_cast<size_t>((m.processed_ns - t0) / bin)] += 1;
  }
  Series s{name, color, {}, false};
  for (size_t i = 0; i < counts.size(); ++i) {
    s.points.emplace_back(t0 + static_cast<int64_t>(i) * bin + bin / 2,
                          counts[i]);
  }
  return s;
}

Series FromSamples(const std::vector<Fields>& samples, const std::string& key,
                   const std::string& name, const std::string& color) {
  Series s{name, color, {}, false};
  for (const Fields& f : samples) {
    if (f.count(key)) s.points.emplace_back(Int(f, "t_mono_ns"), Int(f, key));
  }
  return s;
}

struct Report {
  std::vector<std::pair<std::string, std::string>> rows;  // name, value
  std::vector<std::string> notes;
  std::vector<std::string> violations;
  void Add(const std::string& name, const std::string& value) {
    rows.emplace_back(name, value);
  }
  void Ms(const std::string& name, double ms) { Add(name, Number(ms)); }
};

const ReplayStep* FindStep(const std::vector<ReplayStep>& steps,
                           absl::string_view prefix) {
  for (const ReplayStep& s : steps) {
    if (absl::StartsWith(s.text, prefix)) return &s;
  }
  return nullptr;
}

void AuditRows(const AuditReport& a, Report* r) {
  r->Add("accepted", absl::StrCat(a.accepted));
  r->Add("processed_once", absl::StrCat(a.processed_once));
  r->Add("quarantined", absl::StrCat(a.quarantined));
  r->Add("missing", absl::StrCat(a.missing));
  r->Add("processed_twice", absl::StrCat(a.processed_twice));
  r->Add("replies_sent", absl::StrCat(a.replies_sent));
  r->Add("replies_lost", absl::StrCat(a.replies_lost));
  r->Add("replies_duplicated", absl::StrCat(a.replies_duplicated));
  r->Add("fence_refusals", absl::StrCat(a.fence_refusals));
  if (a.accepted == 0) r->violations.push_back("no message was accepted");
  if (a.missing > 0) {
    r->violations.push_back(absl::StrCat(a.missing, " messages missing"));
  }
  if (a.processed_twice > 0) {
    r->violations.push_back(
        absl::StrCat(a.processed_twice, " messages processed twice"));
  }
  if (a.replies_lost > 0) {
    r->violations.push_back(absl::StrCat(a.replies_lost, " replies lost"));
  }
}

void RefusalRows(const ReplayInput& in,
                 const std::map<std::string, std::string>& zone_of, Report* r) {
  std::map<std::string, int> causes;
  for (const RefusalRow& f : in.refusals) {
    auto z = zone_of.find(f.processor);
    causes[absl::StrCat(z == zone_of.end() ? "?" : z->second, " ", f.what, ": ",
                        f.reason)]++;
  }
  for (const auto& [cause, n] : causes) {
    r->notes.push_back(
        absl::StrCat("fence refusal x", n, " (processor in ", cause, ")"));
  }
}

void ZoneCut(const ReplayInput& in, Report* r, std::vector<Chart>* charts,
             std::vector<Span>* spans) {
  const ReplayStep* cut = FindStep(in.steps, "partition-zone ");
  if (cut == nullptr) cut = FindStep(in.steps, "isolate-zone ");
  if (cut == nullptr) {
    r->violations.push_back(
        "no partition-zone or isolate-zone step in steps.jsonl");
    return;
  }
  const std::vector<std::string> words = absl::StrSplit(cut->text, ' ');
  const std::string zone = words.size() > 1 ? words[1] : "";
  const int64_t c0 = cut->start_ns, c1 = cut->end_ns;
  spans->push_back(Span{c0, c1, cut->text, "#d62728"});
  std::map<std::string, std::string> zone_of;
  for (const Fields& e : in.events) {
    if (Str(e, "event") == "start") zone_of[Str(e, "who")] = Str(e, "zone");
  }
  auto minority = [&](const std::string& who) {
    auto it = zone_of.find(who);
    return it != zone_of.end() && it->second == zone;
  };
  r->Add("cut", cut->text);
  r->Add("cut_seconds", Number(Ms(c1 - c0) / 1000));
  int in_zone = 0;
  for (const auto& [who, z] : zone_of) in_zone += z == zone ? 1 : 0;
  if (in_zone == 0 || in_zone == static_cast<int>(zone_of.size())) {
    r->violations.push_back(absl::StrCat(
        "the processors' event logs show ", in_zone, " of ", zone_of.size(),
        " processors in the cut zone '", zone,
        "' (a zone cut needs some on each side, and the zone by name)"));
  }
  // Who led when the cut came (a leader in the cut zone adds an election
  // on the majority side).
  std::string leader = "?";
  for (const Fields& e : in.member_events) {
    if (Str(e, "event") == "role" && Str(e, "role") == "leader" &&
        Int(e, "t_mono_ns") <= c0) {
      leader = Str(e, "id");
    }
  }
  r->Add("leader_at_cut", leader);
  const std::vector<Tenure> tenures = Tenures(in.events);

  // The majority side: the longest any message waited on a shard that one
  // majority processor owned from the message's arrival to its processing.
  double wait_before = 0, wait_cut = 0, wait_after = 0;
  int64_t counted = 0, longest_at = 0;
  std::string longest_by;
  for (const ProcessedMessage& m : in.processed) {
    if (minority(m.processor)) continue;
    bool held = false;
    for (const Tenure& t : tenures) {
      if (t.who == m.processor && t.shard == m.shard &&
          t.start <= m.accepted_ns && t.end >= m.processed_ns) {
        held = true;
        break;
      }
    }
    if (!held) continue;
    const double wait = Ms(m.processed_ns - m.accepted_ns);
    if (m.accepted_ns < c0) {
      wait_before = std::max(wait_before, wait);
    } else if (m.accepted_ns <= c1) {
      if (wait > wait_cut) {
        wait_cut = wait;
        longest_at = m.accepted_ns;
        longest_by = absl::StrCat(m.processor, " shard ", m.shard);
      }
      ++counted;
    } else {
      wait_after = std::max(wait_after, wait);
    }
  }
  r->Ms("majority_longest_wait_ms", wait_cut);
  const double max_wait = absl::ToDoubleMilliseconds(in.max_wait);
  if (wait_cut > max_wait) {
    r->violations.push_back(
        absl::StrCat("a shard owned on the majority side had mail waiting ",
                     Number(wait_cut), " ms (bound ", Number(max_wait), ")"));
  }
  r->Ms("majority_longest_wait_from_ms",
        counted > 0 ? Ms(longest_at - c0) : -1);
  r->Ms("majority_longest_wait_before_cut_ms", wait_before);
  r->Ms("majority_longest_wait_after_heal_ms", wait_after);
  r->notes.push_back(absl::StrCat(
      "majority_longest_wait_ms: over ", counted,
      " messages accepted during the cut on shards that one majority-side "
      "processor owned from their arrival to their processing; a shard with "
      "waiting mail went without progress at most this long (the longest: ",
      longest_by, ", from majority_longest_wait_from_ms after the cut)"));

  // The cut zone: when its processors stopped starting work (jeopardy),
  // when their sessions lapsed, and their last commit.
  double jeopardy = -1, lapse = -1, last_commit = -1;
  for (const auto& [who, z] : zone_of) {
    if (z != zone) continue;
    int64_t j = -1, x = -1;
    for (const Fields& e : in.events) {
      const int64_t t = Int(e, "t_mono_ns");
      if (Str(e, "who") != who || t < c0 || t > c1) continue;
      if (Str(e, "event") == "jeopardy" && j < 0) j = t;
      if (Str(e, "event") == "expired" && x < 0) x = t;
    }
    if (j < 0) {
      r->violations.push_back(absl::StrCat(
          who, " in ", zone, " never stopped (no jeopardy during the cut)"));
    } else {
      jeopardy = std::max(jeopardy, Ms(j - c0));
    }
    if (x >= 0) lapse = std::max(lapse, Ms(x - c0));
  }
  for (const ProcessedMessage& m : in.processed) {
    if (minority(m.processor) && m.processed_ns >= c0 && m.processed_ns <= c1) {
      last_commit = std::max(last_commit, Ms(m.processed_ns - c0));
    }
  }
  r->Ms("minority_stopped_ms", jeopardy);
  r->Ms("minority_sessions_lapsed_ms", lapse);
  r->Ms("minority_last_processed_ms", last_commit);

  // The shards the cut zone owned at the cut, and their new owners.
  std::set<int64_t> orphaned;
  for (const Tenure& t : tenures) {
    if (minority(t.who) && t.start <= c0 && t.end > c0)
      orphaned.insert(t.shard);
  }
  double takeover = -1;
  for (int64_t shard : orphaned) {
    int64_t first = -1;
    for (const Tenure& t : tenures) {
      if (t.shard == shard && !minority(t.who) && t.start >= c0 &&
          t.start <= c1 && (first < 0 || t.start < first)) {
        first = t.start;
      }
    }
    if (first < 0) {
      r->violations.push_back(absl::StrCat(
          "orphaned shard ", shard, " had no new owner before the heal"));
    } else {
      takeover = std::max(takeover, Ms(first - c0));
    }
  }
  double orphan_wait = 0;
  for (const ProcessedMessage& m : in.processed) {
    if (orphaned.count(m.shard) && m.accepted_ns >= c0 && m.accepted_ns <= c1)
      orphan_wait = std::max(orphan_wait, Ms(m.processed_ns - m.accepted_ns));
  }
  r->Add("orphaned_shards", absl::StrCat(orphaned.size()));
  r->Ms("takeover_ms", takeover);
  r->Ms("orphaned_longest_wait_ms", orphan_wait);

  // After the heal.
  int64_t rejoin = -1;
  for (const Tenure& t : tenures) {
    if (minority(t.who) && t.start >= c1 && (rejoin < 0 || t.start < rejoin)) {
      rejoin = t.start;
    }
  }
  if (!zone_of.empty() && rejoin < 0) {
    r->violations.push_back(
        absl::StrCat("the processors of ", zone, " never owned a shard again"));
  }
  r->Ms("minority_owns_again_after_heal_ms", rejoin < 0 ? -1 : Ms(rejoin - c1));
  int64_t drained = c1;
  for (const ProcessedMessage& m : in.processed) {
    if (m.accepted_ns <= c1) drained = std::max(drained, m.processed_ns);
  }
  r->Ms("backlog_drained_after_heal_ms", Ms(drained - c1));
  RefusalRows(in, zone_of, r);

  const int64_t t0 = in.steps.empty() ? c0 : in.steps.front().start_ns;
  int64_t t1 = c1;
  for (const ProcessedMessage& m : in.processed)
    t1 = std::max(t1, m.processed_ns);
  for (const ReplayStep& s : in.steps) t1 = std::max(t1, s.end_ns);
  Chart rate{"messages processed per second", {}, -1};
  rate.series.push_back(
      Rate(in.processed, t0, t1, absl::StrCat("outside ", zone), "#1f77b4",
           [&](const ProcessedMessage& m) { return !minority(m.processor); }));
  rate.series.push_back(
      Rate(in.processed, t0, t1, absl::StrCat("in ", zone), "#d62728",
           [&](const ProcessedMessage& m) { return minority(m.processor); }));
  charts->push_back(std::move(rate));
  Chart owned{"shards owned, per processor", {}, -1};
  size_t k = 0;
  for (const auto& [who, z] : zone_of) {
    Series s{absl::StrCat(who, " (", z, ")"),
             Palette()[k++ % Palette().size()],
             {},
             true};
    std::vector<std::pair<int64_t, int>> changes;
    for (const Tenure& t : tenures) {
      if (t.who != who) continue;
      changes.emplace_back(t.start, 1);
      if (t.end != kOpen) changes.emplace_back(t.end, -1);
    }
    std::sort(changes.begin(), changes.end());
    int count = 0;
    s.points.emplace_back(t0, 0);
    for (const auto& [t, d] : changes) {
      count += d;
      s.points.emplace_back(t, count);
    }
    owned.series.push_back(std::move(s));
  }
  charts->push_back(std::move(owned));
  if (!in.samples.empty()) {
    Chart backlog{"backlog (accepted, not processed)", {}, -1};
    backlog.series.push_back(
        FromSamples(in.samples, "backlog", "backlog", "#9467bd"));
    charts->push_back(std::move(backlog));
  }
}

void Flood(const ReplayInput& in, Report* r, std::vector<Chart>* charts,
           std::vector<Span>* spans) {
  const ReplayStep* stall = FindStep(in.steps, "mark stall");
  const ReplayStep* unstall = FindStep(in.steps, "mark unstall");
  const ReplayStep* pause = FindStep(in.steps, "mark pause");
  const ReplayStep* resume = FindStep(in.steps, "mark resume");
  if (!stall || !unstall || !pause || !resume) {
    r->violations.push_back(
        "steps.jsonl lacks a mark stall, unstall, pause or resume");
    return;
  }
  spans->push_back(Span{stall->start_ns, unstall->start_ns,
                        "the smarthost stalled", "#d62728"});
  spans->push_back(Span{pause->start_ns, resume->start_ns,
                        "outbound-email paused", "#7f7f7f"});
  r->Add("stall_seconds",
         Number(Ms(unstall->start_ns - stall->start_ns) / 1000));
  std::map<std::string, std::string> zone_of;
  struct Send {
    int64_t start, end;
    int64_t held;
    std::string result;
  };
  std::vector<Send> sends;
  int64_t expired = 0, jeopardy = 0;
  // Sessions and members are judged from the first step on (not while the
  // run starts or stops).
  const int64_t from = in.steps.front().start_ns;
  const int64_t until = in.steps.back().end_ns;
  for (const Fields& e : in.events) {
    const std::string ev = Str(e, "event");
    const int64_t t = Int(e, "t_mono_ns");
    if (ev == "start") zone_of[Str(e, "who")] = Str(e, "zone");
    if (ev == "expired" && t >= from && t <= until) ++expired;
    if (ev == "jeopardy" && t >= from && t <= until) ++jeopardy;
    if (ev != "send") continue;
    const int64_t end = Int(e, "t_mono_ns");
    sends.push_back(Send{end - Int(e, "ms") * 1'000'000, end,
                         Int(e, "db_connections_held"), Str(e, "result")});
  }
  if (sends.empty()) {
    r->violations.push_back("no send in the processors' event logs");
  }
  if (in.samples.empty()) {
    r->violations.push_back("no samples (samples.jsonl) to check bounds on");
  }
  // Every SMTP call ends by its deadline (plus 1 s for the process).
  const double limit = Ms(absl::ToInt64Nanoseconds(in.send_timeout)) + 1000;
  double longest = 0;
  int64_t late = 0, held = 0, timed_out = 0;
  for (const Send& s : sends) {
    longest = std::max(longest, Ms(s.end - s.start));
    if (Ms(s.end - s.start) > limit) ++late;
    if (s.held > 0) ++held;
    if (s.result != "ok") ++timed_out;
  }
  r->Add("smtp_calls", absl::StrCat(sends.size()));
  r->Add("smtp_calls_failed_or_cut", absl::StrCat(timed_out));
  r->Ms("smtp_longest_call_ms", longest);
  r->Add("smtp_calls_past_deadline", absl::StrCat(late));
  r->Add("smtp_calls_holding_a_db_connection", absl::StrCat(held));
  if (late > 0) {
    r->violations.push_back(
        absl::StrCat(late, " SMTP calls outlived ", Number(limit), " ms"));
  }
  if (held > 0) {
    r->violations.push_back(absl::StrCat(
        held, " SMTP calls were made holding a database connection"));
  }
  // The outbox's bound, and connections (PostgreSQL's view).
  int64_t outbox_max = 0, idle_in_txn = -1, connections = -1;
  for (const Fields& f : in.samples) {
    outbox_max = std::max(outbox_max, Int(f, "outbox_max_shard"));
    if (f.count("pg_total")) {
      connections = std::max(connections, Int(f, "pg_total"));
      idle_in_txn = std::max(idle_in_txn, Int(f, "pg_idle_in_transaction"));
    }
  }
  r->Add("outbox_bound", absl::StrCat(in.outbox_limit));
  r->Add("outbox_max_per_shard", absl::StrCat(outbox_max));
  if (outbox_max > in.outbox_limit) {
    r->violations.push_back(absl::StrCat("a shard's outbox reached ",
                                         outbox_max, ", past its bound ",
                                         in.outbox_limit));
  }
  if (connections >= 0) {
    r->Add("pg_connections_max", absl::StrCat(connections));
    r->Add("pg_idle_in_transaction_max", absl::StrCat(idle_in_txn));
  }
  // Inbound goes on while outbound is stuck, until the outboxes are full.
  int64_t during = 0;
  for (const ProcessedMessage& m : in.processed) {
    if (m.processed_ns >= stall->start_ns &&
        m.processed_ns <= unstall->start_ns)
      ++during;
  }
  int64_t backlog_at_stall = 0, outbox_min_at_stall = 0;
  for (const Fields& f : in.samples) {
    if (Int(f, "t_mono_ns") > stall->start_ns) {
      backlog_at_stall = Int(f, "backlog");
      outbox_min_at_stall = Int(f, "outbox_min_shard");
      break;
    }
  }
  r->Add("processed_during_stall", absl::StrCat(during));
  if (during == 0 && backlog_at_stall > 0 &&
      outbox_min_at_stall < in.outbox_limit) {
    r->violations.push_back(
        "inbound stopped while outbound was stuck, before the outboxes "
        "were full");
  }
  // Sessions and members.
  int64_t paused_members = 0;
  for (const Fields& e : in.member_events) {
    const int64_t t = Int(e, "t_mono_ns");
    if (Str(e, "event") == "mode" && Str(e, "mode") != "active" && t >= from &&
        t <= until) {
      ++paused_members;
    }
  }
  r->Add("sessions_lapsed", absl::StrCat(expired));
  r->Add("sessions_in_jeopardy", absl::StrCat(jeopardy));
  r->Add("member_pauses", absl::StrCat(paused_members));
  if (expired > 0) {
    r->violations.push_back(absl::StrCat(expired, " sessions lapsed"));
  }
  if (paused_members > 0) {
    r->violations.push_back(absl::StrCat(paused_members, " member pauses"));
  }
  // The operator's pause: every send in flight at it, or started after it
  // (before the resume), ended within 1 s of it. It is in force once the
  // step after `mark pause` (quoratectl pause) returned: committed.
  int64_t paused_at = pause->end_ns;
  for (size_t i = 0; i + 1 < in.steps.size(); ++i) {
    if (&in.steps[i] == pause) paused_at = in.steps[i + 1].end_ns;
  }
  double stopped = 0;
  int64_t started_after = 0;
  for (const Send& s : sends) {
    if (s.end < paused_at || s.start > resume->start_ns) continue;
    stopped = std::max(stopped, Ms(s.end - paused_at));
    if (s.start > paused_at) ++started_after;
  }
  r->Ms("pause_every_sender_stopped_ms", stopped);
  r->Add("sends_started_while_paused", absl::StrCat(started_after));
  if (stopped > 1000) {
    r->violations.push_back(absl::StrCat("a send went on ", Number(stopped),
                                         " ms after the pause (bound 1000)"));
  }
  // Drained: once the audit finds nothing left to send, the last send
  // that went through after the resume emptied the outbox. (Not the
  // samples: the sampler's next line may not be written yet.)
  const int64_t unsent =
      in.audit.replies_queued - in.audit.replies_sent - in.audit.replies_failed;
  int64_t drained = resume->start_ns;
  for (const Send& s : sends) {
    if (s.result == "ok" && s.end > resume->start_ns) {
      drained = std::max(drained, s.end);
    }
  }
  r->Ms("outbox_drained_after_resume_ms",
        unsent <= 0 ? Ms(drained - resume->start_ns) : -1);
  if (unsent > 0) {
    r->violations.push_back(
        absl::StrCat("the outbox never drained after the resume: ", unsent,
                     " replies unsent"));
  }
  RefusalRows(in, zone_of, r);
  r->notes.push_back(
      "replies_duplicated: a send cut short (its deadline, or the pause) "
      "after the smarthost took the message is sent again with the same "
      "Message-ID: at-least-once delivery, as the example documents");

  int64_t t0 = in.steps.empty() ? stall->start_ns : in.steps.front().start_ns;
  int64_t t1 = resume->end_ns;
  for (const Fields& f : in.samples) {
    t0 = std::min(t0, Int(f, "t_mono_ns"));
    t1 = std::max(t1, Int(f, "t_mono_ns"));
  }
  Chart queue{"inbound backlog and messages processed per second", {}, -1};
  queue.series.push_back(
      FromSamples(in.samples, "backlog", "backlog", "#9467bd"));
  queue.series.push_back(Rate(in.processed, t0, t1, "processed/s", "#2ca02c",
                              [](const ProcessedMessage&) { return true; }));
  charts->push_back(std::move(queue));
  Chart outbox{
      "outbox: pending replies", {}, static_cast<double>(in.outbox_limit)};
  outbox.series.push_back(
      FromSamples(in.samples, "outbox_max_shard", "largest shard", "#d62728"));
  charts->push_back(std::move(outbox));
  Chart total{"outbox: pending replies, all shards", {}, -1};
  total.series.push_back(
      FromSamples(in.samples, "outbox_pending", "all shards", "#ff7f0e"));
  charts->push_back(std::move(total));
  Chart flight{"SMTP calls in flight, and database connections held", {}, -1};
  Series in_flight{"SMTP calls in flight", "#1f77b4", {}, true};
  std::vector<std::pair<int64_t, int>> changes;
  for (const Send& s : sends) {
    changes.emplace_back(s.start, 1);
    changes.emplace_back(s.end, -1);
  }
  std::sort(changes.begin(), changes.end());
  int count = 0;
  in_flight.points.emplace_back(t0, 0);
  for (const auto& [t, d] : changes) {
    count += d;
    in_flight.points.emplace_back(t, count);
  }
  flight.series.push_back(std::move(in_flight));
  if (connections >= 0) {
    flight.series.push_back(
        FromSamples(in.samples, "pg_active", "pg: active", "#2ca02c"));
    flight.series.push_back(FromSamples(in.samples, "pg_idle_in_transaction",
                                        "pg: idle in transaction", "#d62728"));
  }
  charts->push_back(std::move(flight));
}

}  // namespace

absl::StatusOr<Fields> ParseJsonObject(absl::string_view s) {
  Fields out;
  size_t i = 0;
  SkipSpace(s, &i);
  if (i >= s.size() || s[i] != '{') {
    return absl::InvalidArgumentError("not a JSON object");
  }
  ++i;
  for (;;) {
    SkipSpace(s, &i);
    if (i < s.size() && s[i] == '}') return out;
    if (i >= s.size() || s[i] != '"') {
      return absl::InvalidArgumentError("a member without a name");
    }
    absl::StatusOr<std::string> key = ParseString(s, &i);
    if (!key.ok()) return key.status();
    SkipSpace(s, &i);
    if (i >= s.size() || s[i] != ':') {
      return absl::InvalidArgumentError("a name without ':'");
    }
    ++i;
    SkipSpace(s, &i);
    if (i >= s.size()) return absl::InvalidArgumentError("a missing value");
    if (s[i] == '"') {
      absl::StatusOr<std::string> v = ParseString(s, &i);
      if (!v.ok()) return v.status();
      out[*key] = *v;
    } else if (s[i] == '{' || s[i] == '[') {
      if (absl::Status st = SkipNested(s, &i); !st.ok()) return st;
    } else {
      const size_t start = i;
      while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ' ') ++i;
      out[*key] = std::string(s.substr(start, i - start));
    }
    SkipSpace(s, &i);
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '}') return out;
    return absl::InvalidArgumentError("expected ',' or '}'");
  }
}

absl::StatusOr<std::vector<Fields>> ReadJsonLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::vector<Fields> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    // A last line without its newline is still being written (a sampler
    // that runs on): not read yet.
    if (in.eof()) break;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    absl::StatusOr<Fields> f = ParseJsonObject(line);
    if (!f.ok()) {
      return absl::DataLossError(
          absl::StrCat(path, ":", n, ": ", f.status().message()));
    }
    out.push_back(*std::move(f));
  }
  return out;
}

ReplayResult AnalyzeReplay(const ReplayInput& in) {
  Report r;
  std::vector<Chart> charts;
  std::vector<Span> spans;
  r.Add("replay", in.kind);
  AuditRows(in.audit, &r);
  if (in.kind == "zone-cut") {
    ZoneCut(in, &r, &charts, &spans);
  } else if (in.kind == "outbound-flood") {
    Flood(in, &r, &charts, &spans);
  } else {
    r.violations.push_back(absl::StrCat("unknown replay kind '", in.kind,
                                        "' (zone-cut or outbound-flood)"));
  }
  ReplayResult out;
  out.violations = r.violations;
  std::vector<std::string> json;
  for (const auto& [name, value] : r.rows) {
    absl::StrAppend(&out.text, name, "=", value, "\n");
    double d = 0;
    json.push_back(
        absl::StrCat("\"", JsonEscape(name), "\": ",
                     absl::SimpleAtod(value, &d)
                         ? value
                         : absl::StrCat("\"", JsonEscape(value), "\"")));
  }
  json.push_back(absl::StrCat("\"violations\": ", r.violations.size()));
  out.json = absl::StrCat("{", absl::StrJoin(json, ", "), "}\n");
  for (const std::string& n : r.notes)
    absl::StrAppend(&out.text, "# ", n, "\n");
  for (const std::string& v : r.violations) {
    absl::StrAppend(&out.text, "VIOLATION: ", v, "\n");
  }
  absl::StrAppend(&out.text, "result=", out.ok() ? "PASS" : "FAIL", "\n");

  int64_t t0 = kOpen, t1 = 0;
  for (const ReplayStep& s : in.steps) {
    t0 = std::min(t0, s.start_ns);
    t1 = std::max(t1, s.end_ns);
  }
  for (const Fields& f : in.samples) {
    t0 = std::min(t0, Int(f, "t_mono_ns"));
    t1 = std::max(t1, Int(f, "t_mono_ns"));
  }
  for (const ProcessedMessage& m : in.processed) {
    t1 = std::max(t1, m.processed_ns);
  }
  if (t0 == kOpen) t0 = 0;
  std::string table;
  for (const auto& [name, value] : r.rows) {
    absl::StrAppend(&table, "<tr><td>", Escape(name), "</td><td>",
                    Escape(value), "</td></tr>\n");
  }
  std::string notes;
  for (const std::string& n : r.notes) {
    absl::StrAppend(&notes, "<li>", Escape(n), "</li>\n");
  }
  for (const std::string& v : r.violations) {
    absl::StrAppend(&notes, "<li style=\"color:#c00\">VIOLATION: ", Escape(v),
                    "</li>\n");
  }
  std::string steps;
  for (const ReplayStep& s : in.steps) {
    absl::StrAppendFormat(&steps, "<tr><td>+%.1f s</td><td>%s</td></tr>\n",
                          Ms(s.start_ns - t0) / 1000, Escape(s.text));
  }
  out.html = absl::StrCat(
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>",
      Escape(in.title),
      "</title><style>body{font-family:sans-serif;margin:20px}"
      "table{border-collapse:collapse}td{border:1px solid #ccc;padding:2px "
      "8px}</style></head><body>\n<h1>",
      Escape(in.title), "</h1>\n<p>Result: <b>", out.ok() ? "PASS" : "FAIL",
      "</b></p>\n<table>\n", table, "</table>\n<ul>\n", notes, "</ul>\n",
      Svg(charts, spans, t0, t1), "<h2>Steps</h2>\n<table>\n", steps,
      "</table>\n</body></html>\n");
  return out;
}

absl::StatusOr<ReplayInput> LoadReplay(Db& db, const std::string& dir,
                                       const std::string& kind) {
  ReplayInput in;
  in.kind = kind;
  in.title = absl::StrCat("Quorate email example, replay ", kind, ": ", dir);
  absl::StatusOr<std::vector<Fields>> steps =
      ReadJsonLines(dir + "/steps.jsonl");
  if (!steps.ok()) return steps.status();
  for (const Fields& f : *steps) {
    in.steps.push_back(ReplayStep{Str(f, "step"), Int(f, "start_mono_ns"),
                                  Int(f, "end_mono_ns")});
  }
  DIR* d = opendir(dir.c_str());
  if (d == nullptr)
    return absl::NotFoundError(absl::StrCat("cannot read ", dir));
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) names.push_back(e->d_name);
  closedir(d);
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    const bool email = absl::EndsWith(name, ".email.jsonl");
    const bool member = absl::EndsWith(name, ".events.jsonl");
    if (!email && !member) continue;
    absl::StatusOr<std::vector<Fields>> lines = ReadJsonLines(dir + "/" + name);
    if (!lines.ok()) return lines.status();
    auto& to = email ? in.events : in.member_events;
    to.insert(to.end(), lines->begin(), lines->end());
  }
  auto by_time = [](const Fields& a, const Fields& b) {
    return Int(a, "t_mono_ns") < Int(b, "t_mono_ns");
  };
  std::stable_sort(in.events.begin(), in.events.end(), by_time);
  std::stable_sort(in.member_events.begin(), in.member_events.end(), by_time);
  absl::StatusOr<std::vector<Fields>> samples =
      ReadJsonLines(dir + "/samples.jsonl");
  if (samples.ok()) in.samples = *std::move(samples);
  absl::StatusOr<std::vector<Row>> rows = db.Query(
      "SELECT i.message_id, i.shard, i.accepted_mono_ns, c.processed_mono_ns, "
      "c.processor FROM inbound i JOIN conversation_messages c ON "
      "c.message_id = i.message_id UNION ALL SELECT i.message_id, i.shard, "
      "i.accepted_mono_ns, q.quarantined_mono_ns, q.processor FROM inbound i "
      "JOIN quarantine q ON q.message_id = i.message_id");
  if (!rows.ok()) return rows.status();
  for (const Row& row : *rows) {
    in.processed.push_back(ProcessedMessage{row[0].value_or(""), AsInt(row[1]),
                                            AsInt(row[2]), AsInt(row[3]),
                                            row[4].value_or("")});
  }
  rows = db.Query(
      "SELECT processor, shard, epoch, what, reason, at_mono_ns FROM "
      "fence_refusals");
  if (!rows.ok()) return rows.status();
  for (const Row& row : *rows) {
    in.refusals.push_back(RefusalRow{row[0].value_or(""), row[3].value_or(""),
                                     row[4].value_or(""), AsInt(row[1]),
                                     AsInt(row[2]), AsInt(row[5])});
  }
  return in;
}

std::string SummarizeReplays(
    const std::vector<std::pair<std::string, Fields>>& runs) {
  std::vector<std::string> kinds;
  std::vector<std::string> names;  // in the first run's order
  std::map<std::string, std::map<std::string, std::vector<double>>> values;
  std::map<std::string, int> count;
  for (const auto& [dir, fields] : runs) {
    std::string kind = dir.substr(dir.find_last_of('/') + 1);
    const size_t dash = kind.find_last_of('-');
    if (dash != std::string::npos &&
        kind.find_first_not_of("0123456789", dash + 1) == std::string::npos) {
      kind = kind.substr(0, dash);
    }
    if (!count.count(kind)) kinds.push_back(kind);
    ++count[kind];
    for (const auto& [name, value] : fields) {
      double d = 0;
      if (!absl::SimpleAtod(value, &d)) continue;
      if (std::find(names.begin(), names.end(), name) == names.end())
        names.push_back(name);
      values[kind][name].push_back(d);
    }
  }
  std::string out = "| |";
  std::string rule = "|---|";
  for (const std::string& k : kinds) {
    absl::StrAppend(&out, " ", k, " (", count[k], " runs) |");
    rule += "---|";
  }
  absl::StrAppend(&out, "\n", rule, "\n");
  for (const std::string& name : names) {
    absl::StrAppend(&out, "| ", name, " |");
    for (const std::string& k : kinds) {
      std::vector<double> v = values[k][name];
      if (v.empty()) {
        absl::StrAppend(&out, " |");
        continue;
      }
      std::sort(v.begin(), v.end());
      // The median (of an even count, the mean of the middle two).
      const size_t n = v.size();
      const double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
      if (name == "violations") {
        double sum = 0;
        for (double x : v) sum += x;
        absl::StrAppend(&out, " ", Number(sum), " in all |");
      } else if (n == 1 || v.front() == v.back()) {
        absl::StrAppend(&out, " ", Number(median), " |");
      } else {
        absl::StrAppend(&out, " ", Number(median), " (", Number(v.front()), "-",
                        Number(v.back()), ") |");
      }
    }
    out += "\n";
  }
  return out;
}

absl::StatusOr<std::string> Sample(Db& db) {
  const int64_t now = MonoNowNs();
  absl::StatusOr<std::vector<Row>> backlog =
      db.Query("SELECT count(*) FROM inbound WHERE processed_by IS NULL");
  if (!backlog.ok()) return backlog.status();
  absl::StatusOr<std::vector<Row>> outbox = db.Query(
      "SELECT shard, count(*) FROM outbox WHERE state = 'pending' GROUP BY "
      "shard");
  if (!outbox.ok()) return outbox.status();
  int64_t pending = 0, most = 0, least = 0;
  std::map<int64_t, int64_t> per_shard;
  for (const Row& row : *outbox) {
    per_shard[AsInt(row[0])] = AsInt(row[1]);
    pending += AsInt(row[1]);
    most = std::max(most, AsInt(row[1]));
  }
  // Shards with nothing pending hold the least (0), unless all have some.
  if (per_shard.size() >= static_cast<size_t>(kShards)) {
    least = most;
    for (const auto& [shard, n] : per_shard) least = std::min(least, n);
  }
  std::string line = absl::StrCat(
      "{\"t_mono_ns\": ", now, ", \"backlog\": ", AsInt((*backlog)[0][0]),
      ", \"outbox_pending\": ", pending, ", \"outbox_max_shard\": ", most,
      ", \"outbox_min_shard\": ", least);
  if (db.is_postgres()) {
    absl::StatusOr<std::vector<Row>> pg = db.Query(
        "SELECT coalesce(state, ''), count(*) FROM pg_stat_activity WHERE "
        "datname = current_database() AND pid <> pg_backend_pid() AND "
        "backend_type = 'client backend' GROUP BY 1");
    if (!pg.ok()) return pg.status();
    int64_t total = 0, active = 0, idle_txn = 0;
    for (const Row& row : *pg) {
      const std::string state = row[0].value_or("");
      total += AsInt(row[1]);
      if (state == "active") active += AsInt(row[1]);
      if (absl::StartsWith(state, "idle in transaction"))
        idle_txn += AsInt(row[1]);
    }
    absl::StrAppend(&line, ", \"pg_total\": ", total,
                    ", \"pg_active\": ", active,
                    ", \"pg_idle_in_transaction\": ", idle_txn);
  }
  return line + "}";
}

}  // namespace quorate_email
