// admin/dashboard_page.cc: the /ui page. One self-contained document: its
// style and script are inline, and it fetches nothing but /ui/state from
// the member that served it (no CDN, no fonts, no images).
#include "admin/admin_server.h"

namespace quorate::admin {
namespace {

constexpr char kPage[] = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Quorate</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d2330; background: #f7f8fa; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 15px; margin: 20px 0 6px; text-transform: uppercase; letter-spacing: .04em; color: #4a5468; }
  .sub { color: #6a7386; }
  .stale { color: #b3261e; font-weight: 600; }
  table { border-collapse: collapse; background: #fff; box-shadow: 0 1px 2px #0001; }
  th, td { padding: 4px 10px; text-align: left; border-bottom: 1px solid #e6e8ee; white-space: nowrap; }
  th { font-weight: 600; color: #4a5468; font-size: 12px; }
  .active { color: #0a7a32; font-weight: 600; }
  .paused { color: #b3261e; font-weight: 600; }
  .leader { font-weight: 700; }
  .link { display: inline-block; min-width: 26px; padding: 1px 4px; margin: 1px; border-radius: 3px; font-size: 11px; text-align: center; color: #fff; }
  .link.up { background: #1e8e3e; } .link.silent { background: #c58a00; } .link.down { background: #b3261e; }
  .grid { display: flex; flex-wrap: wrap; gap: 4px; max-width: 1100px; }
  .shard { width: 92px; padding: 4px 6px; border-radius: 4px; background: #fff; box-shadow: 0 1px 2px #0002; font-size: 12px; border-left: 5px solid #999; }
  .shard .n { font-weight: 700; } .shard .o { font-family: ui-monospace, monospace; }
  .shard.unowned { opacity: .55; border-left-color: #999 !important; }
  .shard.draining { background: repeating-linear-gradient(45deg, #fff, #fff 6px, #fff3d6 6px, #fff3d6 12px); }
  .shard.moved { outline: 2px solid #1a73e8; }
  .cols { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
  #timeline td:first-child { color: #6a7386; font-family: ui-monospace, monospace; }
</style>
</head>
<body>
<h1>Quorate <span id="cluster" class="sub"></span></h1>
<div class="sub">served by <b id="self"></b> &middot; <span id="updated">loading&hellip;</span></div>

<h2>Members</h2>
<table id="members"><thead><tr><th>member</th><th>zone</th><th>role</th><th>term</th><th>leader</th><th>mode</th><th>commit</th><th>hears from (ms since last message)</th></tr></thead><tbody></tbody></table>

<div id="groups"></div>

<div class="cols">
<div><h2>Workload switches</h2>
<table id="workloads"><thead><tr><th>workload</th><th>state</th><th>reason</th></tr></thead><tbody></tbody></table></div>
<div><h2>Sessions</h2>
<table id="sessions"><thead><tr><th>lease</th><th>name</th><th>remaining</th><th>ttl</th><th>keys</th></tr></thead><tbody></tbody></table></div>
</div>

<div id="cards"></div>

<h2>Timeline</h2>
<table id="timeline"><thead><tr><th>time</th><th>event</th></tr></thead><tbody></tbody></table>

<script>
"use strict";
const zoneColors = ["#1a73e8", "#e8710a", "#9334e6", "#0a7a32", "#c5221f", "#12b5cb"];
const zoneColor = Object.create(null);  // keys come from the cluster
function colorOf(zone) {
  if (!zone) return "#999";
  if (!(zone in zoneColor)) zoneColor[zone] = zoneColors[Object.keys(zoneColor).length % zoneColors.length];
  return zoneColor[zone];
}
function esc(s) {
  return String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g,
    c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function rows(id, html) { document.querySelector("#" + id + " tbody").innerHTML = html.join(""); }
function ms(v) { return v < 0 ? "-" : (v >= 10000 ? Math.round(v / 1000) + " s" : v + " ms"); }
let lastOwners = Object.create(null);

function render(st) {
  document.getElementById("cluster").textContent = st.cluster_id || "";
  document.getElementById("self").textContent = st.self;
  const age = Date.now() - st.generated_ms;
  const upd = document.getElementById("updated");
  upd.textContent = "updated " + new Date(st.generated_ms).toLocaleTimeString() + (st.error ? " (" + st.error + ")" : "");
  upd.className = age > 3000 || st.error ? "stale" : "";

  // Each card's value is the JSON text its application put there.
  for (const c of st.cards) {
    try { c.value = JSON.parse(c.value); } catch (e) { c.value = {value: c.value}; }
    if (typeof c.value !== "object" || c.value === null) c.value = {value: c.value};
  }
  // Names for leases, from application cards that carry one.
  const names = Object.create(null);
  for (const c of st.cards) if (c.value && c.value.lease) names[c.value.lease] = c.value.name || c.key.split("/").pop();

  rows("members", st.members.map(m => {
    const links = (m.links || []).map(l => {
      const cls = !l.reachable ? "down" : (l.last_contact_ms >= 0 && l.last_contact_ms < 1500 ? "up" : "silent");
      return `<span class="link ${cls}" title="${esc(l.id)}: link ${l.reachable ? "up" : "down"}, last message ${ms(l.last_contact_ms)} ago">${esc(l.id)} ${l.last_contact_ms >= 0 && l.last_contact_ms < 100000 ? l.last_contact_ms : "-"}</span>`;
    }).join("");
    return `<tr data-member="${esc(m.id)}"><td class="${m.role === "leader" ? "leader" : ""}">${esc(m.id)}</td><td><span style="color:${colorOf(m.zone)}">&#9679;</span> ${esc(m.zone)}</td>` +
      `<td>${esc(m.role || "unreachable")}</td><td>${m.term || ""}</td><td>${esc(m.leader_id)}</td>` +
      `<td class="${esc(m.mode)}">${esc(m.mode || m.error)}</td><td>${m.commit_index || ""}</td><td>${links}</td></tr>`;
  }));

  document.getElementById("groups").innerHTML = st.groups.map(g => {
    const cells = g.shards.map(s => {
      const key = g.name + "/" + s.shard;
      const owner = s.owner === "0" ? "" : (names[s.owner] || s.owner);
      const moved = lastOwners[key] !== undefined && lastOwners[key] !== s.owner;
      lastOwners[key] = s.owner;
      return `<div class="shard ${esc(s.state)}${moved ? " moved" : ""}" data-shard="${s.shard}" data-owner="${esc(owner)}" data-epoch="${s.epoch}" data-state="${esc(s.state)}" style="border-left-color:${colorOf(s.zone)}">` +
        `<div class="n">${s.shard}</div><div class="o">${esc(owner || "unowned")}</div><div class="sub">${esc(s.zone)} e${s.epoch}${s.state === "draining" ? " &rarr;" : ""}</div></div>`;
    }).join("");
    return `<h2>Shard group ${esc(g.name)} (${g.shards.length} shards)</h2><div class="grid" data-group="${esc(g.name)}">${cells}</div>`;
  }).join("");

  rows("workloads", st.workloads.map(w =>
    `<tr data-workload="${esc(w.name)}"><td>${esc(w.name)}</td><td class="${w.running ? "active" : "paused"}">${w.running ? "running" : "paused"}</td><td>${esc(w.reason)}</td></tr>`));
  if (!st.workloads.length) rows("workloads", ["<tr><td colspan=3 class=sub>none switched yet: all run</td></tr>"]);

  rows("sessions", st.sessions.map(s =>
    `<tr><td>${esc(s.lease)}</td><td>${esc(names[s.lease] || "")}</td><td>${ms(s.remaining_ms)}</td><td>${ms(s.granted_ms)}</td><td>${s.keys}</td></tr>`));

  // Application cards: quorate/dashboard/APP/NAME, a flat JSON object each.
  const apps = Object.create(null);
  for (const c of st.cards) {
    const parts = c.key.split("/");
    (apps[parts[2]] = apps[parts[2]] || []).push(c);
  }
  document.getElementById("cards").innerHTML = Object.keys(apps).sort().map(app => {
    const cs = apps[app];
    const cols = [];
    for (const c of cs) for (const k of Object.keys(c.value || {})) if (!cols.includes(k)) cols.push(k);
    return `<h2>${esc(app)}</h2><table data-app="${esc(app)}"><thead><tr>${cols.map(k => `<th>${esc(k)}</th>`).join("")}</tr></thead><tbody>` +
      cs.map(c => `<tr>${cols.map(k => `<td>${esc((c.value || {})[k])}</td>`).join("")}</tr>`).join("") + `</tbody></table>`;
  }).join("");

  rows("timeline", st.timeline.slice().reverse().map(e =>
    `<tr data-kind="${esc(e.kind)}"><td>${new Date(e.t_ms).toLocaleTimeString()}</td><td>${esc(e.text)}</td></tr>`));
}

async function poll() {
  try {
    const r = await fetch("/ui/state", {cache: "no-store"});
    if (r.ok) render(await r.json());
  } catch (e) {
    const upd = document.getElementById("updated");
    upd.textContent = "this member does not answer: " + e;
    upd.className = "stale";
  }
  setTimeout(poll, 500);
}
poll();
</script>
</body>
</html>
)html";

}  // namespace

absl::string_view DashboardPage() { return kPage; }

}  // namespace quorate::admin
