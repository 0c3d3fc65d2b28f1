// sync-worker dashboard: draws the overview from /api/overview's JSON and keeps it live
// from /api/events (server-sent events). Text goes in with textContent only: names are
// anyone's text.
"use strict";

const session = JSON.parse(document.getElementById("session").textContent);
let state = JSON.parse(document.getElementById("initial").textContent);
const active = new Map(); // library id -> the latest we know of its sync
const FINAL = new Set(["completed", "failed", "cancelled"]);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(tableId, rows, empty, columns) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "empty" }, empty))]));
}

const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en"));
function duration(seconds) {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) return "—";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min${seconds % 60 ? ` ${seconds % 60} s` : ""}`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}
const since = (iso) => (iso ? (Date.now() - Date.parse(iso)) / 1000 : null);
function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").slice(0, 19);
}
const pill = (status) => el("span", { class: `pill ${status}` }, status);
function meter(value, total, text, hot) {
  const pct = total > 0 ? Math.min(100, (100 * value) / total) : 0;
  const fillBar = el("span");
  fillBar.style.width = `${pct.toFixed(1)}%`; // through CSSOM: the CSP forbids style attributes
  return el("div", { class: `meter${hot ? " hot" : ""}`, role: "progressbar", "aria-valuenow": Math.round(pct), "aria-valuemin": 0, "aria-valuemax": 100 },
    fillBar, el("em", {}, text));
}
function libraryCell(item) {
  return el("td", {}, el("a", { href: `/libraries/${item.library_id}` }, item.display_name || "(no name)"), " ",
    el("small", { class: "mono" }, item.platform_user_id || ""));
}

function button(label, onclick, danger) {
  if (!session.can_act) return null;
  return el("button", { class: `act${danger ? " danger" : ""}`, onclick }, label);
}

async function act(url, question, done) {
  if (!window.confirm(question)) return;
  const flash = document.getElementById("flash");
  try {
    const answer = await fetch(url, { method: "POST", headers: { "X-CSRF-Token": session.csrf }, credentials: "same-origin" });
    const body = await answer.json();
    flash.hidden = false;
    flash.className = answer.ok ? "flash" : "flash bad";
    flash.textContent = answer.ok ? done(body) : `${body.error.code}: ${body.error.message}`;
  } catch (error) {
    flash.hidden = false;
    flash.className = "flash bad";
    flash.textContent = `The dashboard did not answer: ${error}`;
  }
}

function activeRow(item) {
  const finished = FINAL.has(item.status);
  const total = item.total_games || 0;
  const label = total ? `${item.progress ?? 0} %` : item.status;
  return el("tr", { dataset: { library: item.library_id, status: item.status }, class: finished ? "finished" : null },
    libraryCell(item),
    el("td", {}, item.queue || "—"),
    el("td", { class: "status-cell" }, pill(item.status)),
    el("td", {}, meter(item.progress ?? 0, 100, label)),
    el("td", { class: "num games" }, `${num(item.games_processed)} / ${num(total)}`),
    el("td", { class: "num" }, finished ? "—" : duration(item.eta_seconds)),
    el("td", { class: "num" }, item.attempt ?? "—"),
    el("td", { class: "num elapsed", dataset: { started: item.started_at || "" } }, duration(since(item.started_at))),
    el("td", {}, finished ? null : button("Cancel", () => act(`/api/syncs/${item.library_id}/cancel`,
      `Cancel the sync of ${item.display_name || item.library_id}? It stops at its next batch, keeping what it wrote.`,
      (b) => (b.cancelled ? "Cancellation requested." : "Nothing was queued or running.")), true)));
}

function renderActive() {
  const items = [...active.values()];
  fill("active", items.map(activeRow), "No sync is queued or running.", 9);
  const c = state.active_counts || {};
  document.getElementById("active-counts").textContent = `${num(c.syncing)} syncing · ${num(c.queued)} queued`;
}

function renderRecent() {
  fill("recent", (state.recent || []).map((run) => el("tr", { dataset: { run: run.run_id, library: run.library_id } },
    libraryCell(run), el("td", {}, run.sync_type), el("td", {}, pill(run.status)),
    el("td", { class: "num" }, num(run.total_games)), el("td", { class: "num" }, num(run.new_games)),
    el("td", { class: "num" }, num(run.updated_games)), el("td", { class: "num" }, num(run.removed_games)),
    el("td", { class: "num" }, num(run.api_calls)),
    el("td", { class: "num" }, duration((Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000)),
    el("td", { class: "mono" }, when(run.finished_at)),
    el("td", {}, run.error ? [el("code", {}, run.error.code), " ", run.error.message] : ""))), "Nothing has finished yet.", 11);
}

function renderQueues() {
  const workers = state.workers || [];
  const serving = (queue) => workers.filter((w) => (w.queues || []).includes(queue) && (queue === "low" || w.can_sync !== false)).length;
  fill("queues", Object.entries(state.queues || {}).map(([name, q]) => el("tr", { dataset: { queue: name } },
    el("td", {}, name), el("td", { class: "num" }, num(q.ready)), el("td", { class: "num" }, num(q.prefetched)),
    el("td", { class: "num" }, num(q.delayed)), el("td", { class: "num" }, num(q.dead)),
    el("td", { class: "num" }, num(serving(name))))), "Queues unknown: Redis did not answer.", 6);
  fill("workers", workers.map((w) => el("tr", {}, el("td", {}, w.host), el("td", { class: "num" }, w.pid),
    el("td", {}, (w.queues || []).join(", ")), el("td", { class: "num" }, `${w.seen_s_ago} s ago`))), "No live worker.", 4);
}

function renderBudget() {
  fill("budget", (state.budget || []).map((b) => el("tr", { dataset: { bucket: b.bucket } },
    el("td", {}, b.bucket),
    el("td", {}, meter(b.used, b.limit, `${num(b.used)} / ${num(b.limit)} per ${duration(b.window_s)}`, b.used >= 0.8 * b.limit)),
    el("td", { class: "num" }, b.daily_limit ? `${num(b.daily_used)} / ${num(b.daily_limit)}` : num(b.daily_used)),
    el("td", {}, b.backoff_until ? `until ${when(b.backoff_until)}` : "none"),
    el("td", { class: "num" }, num(b.deferrals_last_hour)))), "Budget unknown: Redis did not answer.", 5);
}

function facts(id, pairs) {
  document.getElementById(id).replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function renderSchedule() {
  const s = state.schedule || {};
  const tick = s.last_tick;
  facts("schedule", [
    ["Due now", num(s.due_now)],
    ["Due within the hour", num(s.due_next_hour)],
    ["Accounts in back-off", `${num(s.in_backoff)}${s.next_backoff_retry_at ? ` (next retry ${when(s.next_backoff_retry_at)})` : ""}`],
    ["Last tick", tick ? `${when(tick.at)}: queued ${num(tick.queued)} of budget ${num(tick.budget)}${tick.requeued ? `, requeued ${num(tick.requeued)}` : ""}` : "none yet"],
    ["Next tick", tick ? when(tick.next_tick_at) : "—"],
  ]);
  const e = state.enrichment || {};
  facts("enrichment", [
    ["Done", num(e.enriched)], ["Unavailable", num(e.unavailable)], ["Pending (queued)", num(e.pending)],
    ["Not queued", num(e.not_queued)], ["Stale", num(e.stale)],
    ["Counted", `${duration(e.counted_s_ago)} ago (every 30 s: it reads the whole catalog)`],
  ]);
}

function renderDead() {
  const dead = state.dead_letters || { count: 0, latest: [] };
  document.getElementById("dead-count").textContent = `${num(dead.count)} in all${dead.count > dead.latest.length ? `, newest ${dead.latest.length} shown` : ""}`;
  const all = document.getElementById("requeue-all");
  all.hidden = !session.can_act || dead.count === 0;
  fill("dead", dead.latest.map((d) => el("tr", { dataset: { message: d.message_id } },
    el("td", { class: "mono" }, when(d.dead_at)), el("td", {}, d.queue), el("td", {}, d.actor),
    el("td", { class: "mono" }, d.actor === "sync_library" && d.args.length ? el("a", { href: `/libraries/${d.args[0]}` }, d.args[0]) : JSON.stringify(d.args).slice(0, 80)),
    el("td", {}, el("code", {}, d.error.code), " ", d.error.message),
    el("td", { class: "num" }, d.retries),
    el("td", {}, button("Requeue", () => act(`/api/dead-letters/${encodeURIComponent(d.message_id)}/requeue`,
      `Requeue ${d.actor} ${d.message_id}? It runs again from a fresh retry count.`, () => "Requeued.")), " ",
      button("Discard", () => act(`/api/dead-letters/${encodeURIComponent(d.message_id)}/discard`,
        `Discard ${d.actor} ${d.message_id} for good?`, () => "Discarded."), true)))), "No dead letters.", 7);
}

function setStatus(kind, text) {
  document.getElementById("status").className = `status ${kind}`;
  document.getElementById("status-text").textContent = text;
}

function renderAll() {
  if (state.error) {
    setStatus("down", `${state.error.code}: ${state.error.message}`);
    return;
  }
  active.clear();
  for (const item of state.active || []) active.set(item.library_id, item);
  renderActive(); renderRecent(); renderQueues(); renderBudget(); renderSchedule(); renderDead();
  const h = state.health || {};
  setStatus(h.healthy ? "live" : "down", `${h.healthy ? "healthy" : h.reason} · updated ${new Date().toLocaleTimeString()}`);
}

function onProgress(event) {
  const known = active.get(event.library_id) || {};
  active.set(event.library_id, { ...known, ...event, attempt: event.attempt ?? known.attempt });
  renderActive();
}

document.getElementById("requeue-all").addEventListener("click", () => act("/api/dead-letters/requeue-all",
  `Requeue all ${state.dead_letters.count} dead letters?`, (b) => `Requeued ${b.requeued}${b.kept.length ? `; ${b.kept.length} kept: ${b.kept[0].error.message}` : ""}.`));

renderAll();
setInterval(() => {
  for (const cell of document.querySelectorAll("#active td.elapsed")) cell.textContent = duration(since(cell.dataset.started));
}, 1000);

const feed = new EventSource("/api/events");
feed.addEventListener("open", () => setStatus("live", "live"));
feed.addEventListener("error", () => setStatus("down", "reconnecting to the dashboard…"));
feed.addEventListener("overview", (message) => { state = JSON.parse(message.data); renderAll(); });
feed.addEventListener("progress", (message) => onProgress(JSON.parse(message.data)));
