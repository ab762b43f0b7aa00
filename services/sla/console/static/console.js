// ticketflow ops console. Loads a snapshot, then applies the deltas of /v1/stream.
// Plain browser JavaScript, no build step; uPlot (vendored) draws the goal charts.
"use strict";
(function () {
  const DONE = new Set(["solved", "closed"]);
  const LOADING = new Set(["new", "open", "on_hold"]); // what counts against agent capacity
  const WAITING = new Set(["new", "open"]);
  const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
  const STATUS_WORDS = {
    on_track: "On track", at_risk: "At risk", missed: "Missed", met: "Met", no_data: "No data",
    breached: "Breached", online: "Online", away: "Away", offline: "Offline",
  };
  const FEED_MAX = 100;
  const MAX_ROWS = 500; // per table: the most urgent first; the count says how many in all

  const state = {
    tickets: new Map(), timers: new Map(), feed: [], agents: null, agentsNote: "",
    goals: null, ready: false, buffer: [], needSnapshot: false, position: null,
    sort: { key: "overdue", dir: -1 }, riskKeys: "", charts: [],
  };
  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (s) => String(s == null ? "" : s).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

  // --- time in the viewer's zone, with the offset ------------------------------------------
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
  function offsetText(d) {
    const minutes = -d.getTimezoneOffset();
    const sign = minutes >= 0 ? "+" : "-";
    const a = Math.abs(minutes);
    return "UTC" + sign + String(Math.floor(a / 60)).padStart(2, "0") + ":" + String(a % 60).padStart(2, "0");
  }
  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(iso, withDate) {
    if (!iso) return "—";
    const d = new Date(iso);
    const today = new Date().toDateString() === d.toDateString();
    const time = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    const date = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    return (withDate || !today ? date + " " : "") + time + " " + offsetText(d);
  }
  function fmtSpan(seconds) {
    const s = Math.max(0, Math.floor(Math.abs(seconds)));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60), sec = s % 60;
    if (d) return d + "d " + h + "h " + m + "m";
    if (h) return h + "h " + m + "m " + pad(sec) + "s";
    return m + "m " + pad(sec) + "s";
  }
  // Server time minus this browser's clock, measured at each snapshot: countdowns follow sla.
  let skew = 0;
  const now = () => Date.now() + skew;

  // --- applying the snapshot and the deltas ------------------------------------------------
  function seqOf(id) {
    const [epoch, seq] = String(id || "").split(".");
    return { epoch, seq: Number(seq) || 0 };
  }
  // Timestamps are parsed once, when a timer or ticket arrives: rendering compares numbers.
  const ms = (iso) => (iso ? Date.parse(iso) : null);
  function putTimer(t) {
    t.due = ms(t.due_at);
    t.breached = ms(t.breached_at);
    state.timers.set(t.timer_id, t);
    return t;
  }
  function setTicket(t) {
    if (DONE.has(t.status)) { state.tickets.delete(t.id); return; }
    const old = state.tickets.get(t.id);
    if (old && old.version && t.version && t.version < old.version) return;
    const merged = Object.assign({}, old || {}, t);
    merged.created = ms(merged.created_at);
    state.tickets.set(t.id, merged);
  }
  // One line per fact: a redelivered or replayed event (after a restart) is not shown twice.
  const feedKey = (f) => (f.timer_id ? [f.type, f.timer_id, f.level || "", f.when || ""]
    : [f.type, f.goal_id, f.at]).join("|");
  function addFeed(item) {
    const key = feedKey(item);
    if (state.feed.some((f) => feedKey(f) === key)) return;
    state.feed.unshift(item);
    if (state.feed.length > FEED_MAX) state.feed.length = FEED_MAX;
  }
  function applySla(e) {
    let t = state.timers.get(e.timer_id);
    switch (e.type) {
      case "sla.started":
        putTimer({ timer_id: e.timer_id, ticket_id: e.ticket_id, metric: e.metric,
          status: "running", due_at: e.due_at, breached_at: null });
        break;
      case "sla.paused": if (t) t.status = "paused"; break;
      case "sla.resumed":
        if (t) { t.status = "running"; t.due_at = e.due_at; putTimer(t); }
        else putTimer({ timer_id: e.timer_id, ticket_id: e.ticket_id,
          metric: e.metric, status: "running", due_at: e.due_at, breached_at: null });
        break;
      case "sla.met": state.timers.delete(e.timer_id); break;
      case "sla.warning":
        if (!t) putTimer({ timer_id: e.timer_id, ticket_id: e.ticket_id,
          metric: e.metric, status: "running", due_at: e.due_at, breached_at: null });
        break;
      case "sla.breached":
        if (!t) t = { timer_id: e.timer_id, ticket_id: e.ticket_id, metric: e.metric, status: "running", due_at: e.due_at };
        t.breached_at = e.due_at;
        putTimer(t);
        addFeed(e);
        break;
      case "sla.escalated": addFeed(e); break;
    }
  }
  function apply(kind, data) {
    if (kind === "sla") applySla(data);
    else if (kind === "ticket") setTicket(data);
    else if (kind === "goal") { addFeed(data); loadGoals(); }
    scheduleRender();
  }
  function onStreamEvent(kind, ev) {
    if (kind === "reset") { loadSnapshot(); return; }
    const data = JSON.parse(ev.data);
    if (!state.ready) { state.buffer.push([kind, data, ev.lastEventId]); return; }
    apply(kind, data);
  }

  async function getJSON(url) {
    const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (r.status === 401) { window.location.assign("/console"); throw new Error("signed out"); }
    if (!r.ok) throw new Error(url + ": HTTP " + r.status);
    return r.json();
  }
  let snapshotRun = 0;
  async function loadSnapshot() {
    const run = ++snapshotRun;
    state.ready = false;
    state.buffer = [];
    let snap;
    try { snap = await getJSON("/v1/console/snapshot"); } catch (err) { state.needSnapshot = true; return; }
    if (run !== snapshotRun) return;
    skew = Date.parse(snap.now) - Date.now();
    state.tickets = new Map();
    state.timers = new Map();
    snap.tickets.forEach(setTicket);
    snap.timers.forEach(putTimer);
    const live = state.feed.filter((f) => f.type !== "sla.breached");
    state.feed = live.concat(snap.feed).slice(0, FEED_MAX);
    state.position = snap.position;
    const pos = seqOf(snap.position);
    for (const [kind, data, id] of state.buffer) {
      const at = seqOf(id);
      if (at.epoch !== pos.epoch || at.seq > pos.seq) apply(kind, data);
    }
    state.buffer = [];
    state.ready = true;
    state.needSnapshot = false;
    document.body.dataset.ready = "true";
    scheduleRender();
  }
  async function loadAgents() {
    try {
      const body = await getJSON("/v1/console/agents");
      state.agents = body.items;
      state.agentsNote = body.available ? "" : "Agents unavailable: " + (body.reason || "router did not answer");
    } catch (err) { state.agentsNote = "Agents unavailable: " + err.message; }
    scheduleRender();
  }
  let goalsTimer = null;
  function loadGoals() {
    clearTimeout(goalsTimer);
    goalsTimer = setTimeout(async () => {
      try { state.goals = await getJSON("/v1/console/goals"); renderGoals(); }
      catch (err) { /* kept: the previous figures stay on screen */ }
    }, 200);
  }

  // --- the stream ----------------------------------------------------------------------------
  let source = null;
  function connect() {
    source = new EventSource("/v1/stream", { withCredentials: true });
    ["sla", "ticket", "goal", "reset"].forEach((k) => source.addEventListener(k, (ev) => onStreamEvent(k, ev)));
    source.onopen = () => {
      setConn("live", "Live");
      if (state.needSnapshot) { loadSnapshot(); loadAgents(); loadGoals(); }
    };
    source.onerror = () => {
      setConn("reconnecting", "Reconnecting…");
      state.needSnapshot = true;
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (e.g. restarting, or the session ended): try again.
        source.close();
        setTimeout(async () => {
          try { await getJSON("/v1/console/snapshot"); } catch (err) { /* 401 redirects */ }
          connect();
        }, 2000);
      }
    };
  }
  function setConn(stateName, text) {
    const el = $("#conn");
    el.dataset.state = stateName;
    el.textContent = text;
    $("#banner").hidden = stateName !== "reconnecting";
  }

  // --- rendering -------------------------------------------------------------------------------
  let renderPending = false;
  function scheduleRender() {
    if (renderPending) return;
    renderPending = true;
    requestAnimationFrame(() => { renderPending = false; render(); });
  }
  function ticketLink(id) {
    return '<a href="#" data-ticket="' + esc(id) + '">' + esc(id) + "</a>";
  }
  function tag(status) {
    return '<span class="tag s-' + esc(status) + '">' + esc(STATUS_WORDS[status] || status) + "</span>";
  }
  function windowSeconds() { return Number($("#window").value) * 60; }

  function classify() {
    const t0 = now(), win = windowSeconds() * 1000;
    const breached = [], risk = [], worst = new Map();
    for (const t of state.timers.values()) {
      const ticket = state.tickets.get(t.ticket_id);
      if (!ticket) continue; // solved or unknown: not open
      let level = 0;
      if (t.breached) { breached.push(t); level = 2; }
      else if (t.status === "running" && t.due && t.due - t0 <= win) { risk.push(t); level = 1; }
      worst.set(t.ticket_id, Math.max(worst.get(t.ticket_id) || 0, level));
    }
    risk.sort((a, b) => a.due - b.due);
    return { breached, risk, worst };
  }
  function sortBreached(rows) {
    const { key, dir } = state.sort;
    const val = (t) => {
      const tk = state.tickets.get(t.ticket_id) || {};
      switch (key) {
        case "ticket": return t.ticket_id;
        case "metric": return t.metric;
        case "priority": return PRIORITY_RANK[tk.priority] ?? 9;
        case "group": return tk.group || "";
        case "channel": return tk.channel || "";
        case "assignee": return tk.assignee_id || "";
        default: return -(t.breached || t.due);
      }
    };
    return rows.sort((a, b) => { const x = val(a), y = val(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
  }
  function countText(sec, n) {
    $("[data-count]", sec).textContent = "(" + n + (n > MAX_ROWS ? ", the first " + MAX_ROWS + " shown" : "") + ")";
  }
  function renderBreached(rows) {
    const sec = $("#breached");
    sortBreached(rows);
    countText(sec, rows.length);
    $(".empty", sec).hidden = rows.length > 0;
    const t0 = now();
    $("tbody", sec).innerHTML = rows.slice(0, MAX_ROWS).map((t) => {
      const tk = state.tickets.get(t.ticket_id) || {};
      return '<tr data-ticket-id="' + esc(t.ticket_id) + '" data-metric="' + esc(t.metric) + '"><td>' +
        ticketLink(t.ticket_id) + "</td><td>" + esc(t.metric) + '</td><td class="p-' + esc(tk.priority) + '">' +
        esc(tk.priority) + "</td><td>" + esc(tk.group || "—") + "</td><td>" + esc(tk.channel) + "</td><td>" +
        esc(tk.assignee_id || "unassigned") + '</td><td class="time over" data-since="' + (t.breached || t.due) +
        '">' + fmtSpan((t0 - (t.breached || t.due)) / 1000) + " over</td></tr>";
    }).join("");
  }
  function renderRisk(rows) {
    const sec = $("#at-risk");
    countText(sec, rows.length);
    $(".empty", sec).hidden = rows.length > 0;
    const t0 = now();
    $("tbody", sec).innerHTML = rows.slice(0, MAX_ROWS).map((t) => {
      const tk = state.tickets.get(t.ticket_id) || {};
      return '<tr data-ticket-id="' + esc(t.ticket_id) + '" data-metric="' + esc(t.metric) + '"><td>' +
        ticketLink(t.ticket_id) + "</td><td>" + esc(t.metric) + '</td><td class="p-' + esc(tk.priority) + '">' +
        esc(tk.priority) + "</td><td>" + esc(tk.group || "—") + "</td><td>" + esc(tk.assignee_id || "unassigned") +
        '</td><td class="time">' + fmtTime(t.due) + '</td><td class="time" data-due="' + t.due + '">' +
        fmtSpan((t.due - t0) / 1000) + "</td></tr>";
    }).join("");
  }
  function renderCounts(worst) {
    const dims = [["group", "Group"], ["priority", "Priority"], ["channel", "Channel"]];
    const html = dims.map(([field, title]) => {
      const rows = new Map();
      for (const tk of state.tickets.values()) {
        if (!worst.has(tk.id)) continue; // no open timer
        const k = tk[field] || "(none)";
        const r = rows.get(k) || [0, 0, 0];
        r[2 - worst.get(tk.id)]++; // [breached, at risk, on track]
        rows.set(k, r);
      }
      const keys = [...rows.keys()].sort((a, b) => field === "priority"
        ? (PRIORITY_RANK[a] ?? 9) - (PRIORITY_RANK[b] ?? 9) : a.localeCompare(b));
      return '<table data-dimension="' + field + '"><thead><tr><th scope="col">' + title +
        '</th><th scope="col" class="num">Breached</th><th scope="col" class="num">At risk</th>' +
        '<th scope="col" class="num">On track</th></tr></thead><tbody>' +
        (keys.length ? keys.map((k) => { const r = rows.get(k); return '<tr data-key="' + esc(k) + '"><td>' +
          esc(k) + '</td><td class="num">' + r[0] + '</td><td class="num">' + r[1] + '</td><td class="num">' +
          r[2] + "</td></tr>"; }).join("") : '<tr><td colspan="4" class="empty">No open timers.</td></tr>') +
        "</tbody></table>";
    }).join("");
    $("#counts .counts").innerHTML = html;
  }
  function renderQueue() {
    const groups = new Map();
    const loads = new Map(); // agent -> channel -> n
    for (const tk of state.tickets.values()) {
      if (!tk.assignee_id && WAITING.has(tk.status)) {
        const g = groups.get(tk.group || "(no group)") || { n: 0, oldest: null };
        g.n++;
        if (!g.oldest || tk.created < g.oldest) g.oldest = tk.created;
        groups.set(tk.group || "(no group)", g);
      }
      if (tk.assignee_id && LOADING.has(tk.status)) {
        const a = loads.get(tk.assignee_id) || {};
        a[tk.channel] = (a[tk.channel] || 0) + 1;
        loads.set(tk.assignee_id, a);
      }
    }
    const t0 = now();
    const keys = [...groups.keys()].sort();
    $("#queue-body").innerHTML = keys.map((k) => {
      const g = groups.get(k);
      return '<tr data-group="' + esc(k) + '"><td>' + esc(k) + '</td><td class="num">' + g.n +
        '</td><td class="time" data-since="' + g.oldest + '">' + fmtSpan((t0 - g.oldest) / 1000) + "</td></tr>";
    }).join("");
    $("#queue-empty").hidden = keys.length > 0;
    const agents = state.agents || [];
    $("#agents tbody").innerHTML = agents.map((a) => {
      const load = loads.get(a.id) || {};
      const cap = a.capacity || {};
      const channels = [...new Set([...Object.keys(cap).filter((c) => c !== "*"), ...Object.keys(load)])].sort();
      const cells = channels.map((c) => {
        const max = cap[c] ?? cap["*"] ?? 0, n = load[c] || 0;
        return '<span class="load' + (n >= max ? " full" : "") + '">' + esc(c) + " " + n + "/" + max +
          (n >= max ? " (full)" : "") + "</span>";
      }).join("") || (cap["*"] != null ? '<span class="load">any 0/' + cap["*"] + "</span>" : "—");
      return '<tr data-agent="' + esc(a.id) + '"><td>' + esc(a.name || a.id) + "</td><td>" + tag(a.status) +
        "</td><td>" + cells + "</td></tr>";
    }).join("");
    const note = $("#agents-note");
    note.textContent = state.agentsNote || (state.agents && !agents.length ? "No agents yet." : "");
    note.hidden = !note.textContent;
  }
  function renderFeed() {
    const sec = $("#feed");
    $(".empty", sec).hidden = state.feed.length > 0;
    $("ol", sec).innerHTML = state.feed.map((f) => {
      let what;
      if (f.type === "sla.breached") what = "<strong>Breached</strong> " + esc(f.metric) + " on " + ticketLink(f.ticket_id);
      else if (f.type === "sla.escalated") what = "<strong>Escalated</strong> (level " + esc(f.level) + ", on " +
        esc(f.when) + ") " + esc(f.metric) + " on " + ticketLink(f.ticket_id);
      else what = "<strong>Goal " + esc(STATUS_WORDS[f.type.split(".")[1]] || f.type) + "</strong> " + esc(f.name || f.goal_id);
      const at = f.at || f.fired_at || f.due_at;
      return '<li data-type="' + esc(f.type) + '"><time datetime="' + esc(at) + '">' + fmtTime(at) + "</time>" + what + "</li>";
    }).join("");
  }
  // performance entries for `python -m services.sla.console.bench` (last render, last tick)
  function measured(name, start) {
    performance.clearMeasures(name);
    performance.measure(name, { start });
  }
  function render() {
    const started = performance.now();
    const { breached, risk, worst } = classify();
    state.riskKeys = risk.map((t) => t.timer_id).join(",") + "|" + breached.length;
    renderBreached(breached);
    renderRisk(risk);
    renderCounts(worst);
    renderQueue();
    renderFeed();
    measured("tf-render", started);
    if (state.ready && !performance.getEntriesByName("tf-first-render").length) {
      performance.mark("tf-first-render");
    }
  }
  function tick() {
    if (!state.ready) return;
    const started = performance.now();
    const { breached, risk } = classify();
    const keys = risk.map((t) => t.timer_id).join(",") + "|" + breached.length;
    if (keys !== state.riskKeys) { render(); return; }
    const t0 = now();
    document.querySelectorAll("td[data-due]").forEach((td) => {
      td.textContent = fmtSpan((Number(td.dataset.due) - t0) / 1000);
    });
    document.querySelectorAll("td[data-since]").forEach((td) => {
      const over = td.classList.contains("over") ? " over" : "";
      td.textContent = fmtSpan((t0 - Number(td.dataset.since)) / 1000) + over;
    });
    measured("tf-tick", started);
  }

  // --- goals --------------------------------------------------------------------------------
  function fmtGoalValue(v, metric) {
    if (v == null) return "—";
    return metric === "nps" ? Number(v).toFixed(1) : Number(v).toFixed(1) + " %";
  }
  function renderGoals() {
    const body = state.goals || { available: false, items: [] };
    const box = $("#goals .goals");
    state.charts.forEach((c) => c.destroy());
    state.charts = [];
    const items = body.items || [];
    $("#goals-empty").hidden = items.length > 0;
    $("#goals-empty").textContent = body.available ? "No goals yet." : "No goals: this sla has no service goals set up.";
    box.innerHTML = items.map((g, i) => {
      const att = g.attainment || {};
      const status = g.status || att.status || "no_data";
      const value = g.value ?? att.value, target = g.target ?? att.target;
      const metric = g.metric || (g.goal && g.goal.metric);
      const p = att.projection;
      return '<article class="goal" data-goal-id="' + esc(g.id) + '"><h3>' + esc(g.name || g.id) + "</h3>" +
        '<p class="figures"><strong data-goal-value>' + fmtGoalValue(value, metric) + "</strong> against target " +
        '<span data-goal-target>' + fmtGoalValue(target, metric) + "</span> " + tag(status) + "</p>" +
        (p && p.value != null ? '<p class="hint">Projected to period end: ' + fmtGoalValue(p.value, metric) +
          " (" + fmtGoalValue(p.low, metric) + " – " + fmtGoalValue(p.high, metric) + ")" +
          (att.needed != null ? "; needed from the rest: " + fmtGoalValue(att.needed, "") : "") + "</p>" : "") +
        '<div class="chart" data-chart="' + i + '" role="img" aria-label="Daily ' + esc(g.name || "") +
        ' against its target"></div></article>';
    }).join("");
    items.forEach((g, i) => drawGoal(g, box.querySelector('[data-chart="' + i + '"]')));
  }
  function drawGoal(g, el) {
    const att = g.attainment;
    if (!att || !window.uPlot || !Array.isArray(att.trend) || !att.trend.length) { el.hidden = true; return; }
    const xs = att.trend.map((p) => Date.parse(p.date) / 1000);
    const vals = att.trend.map((p) => p.value);
    const end = att.period && att.period.end ? Date.parse(att.period.end) / 1000 : null;
    const proj = att.trend.map(() => null), low = proj.slice(), high = proj.slice();
    if (end && end > xs[xs.length - 1] && att.projection && att.projection.value != null) {
      proj[proj.length - 1] = vals[vals.length - 1];
      xs.push(end); vals.push(null);
      proj.push(att.projection.value); low.push(att.projection.low); high.push(att.projection.high);
    }
    const target = xs.map(() => att.target ?? g.target);
    const width = Math.max(300, el.clientWidth || 340);
    const opts = {
      width, height: 160, legend: { show: true },
      scales: { x: { time: true } },
      series: [{}, { label: "daily", stroke: "#1a56db", width: 2, points: { show: true } },
        { label: "target", stroke: "#b42318", dash: [6, 4], width: 1.5 },
        { label: "projection", stroke: "#8a5300", dash: [2, 3], width: 2, spanGaps: true },
        { label: "low", stroke: "#d9a441", width: 1, spanGaps: true },
        { label: "high", stroke: "#d9a441", width: 1, spanGaps: true }],
    };
    state.charts.push(new window.uPlot(opts, [xs, vals, target, proj, low, high], el));
  }

  // --- ticket detail --------------------------------------------------------------------------
  async function openDetail(id) {
    const dlg = $("#detail");
    $("#detail-title").textContent = "Ticket " + id;
    const box = $(".body", dlg);
    box.innerHTML = "<p>Loading…</p>";
    if (!dlg.open) dlg.showModal();
    let d;
    try { d = await getJSON("/v1/console/tickets/" + encodeURIComponent(id)); }
    catch (err) { box.innerHTML = '<p class="error">' + esc(err.message) + "</p>"; return; }
    const tk = (d.router && d.router.ticket) || state.tickets.get(id) || {};
    let html = "<p>" + esc(tk.subject || "") + "</p><p>Status <strong>" + esc(tk.status) + "</strong>, priority " +
      esc(tk.priority) + ", channel " + esc(tk.channel) + ", group " + esc(tk.group || "—") + ", assignee " +
      esc(tk.assignee_id || "unassigned") + "</p><h3>SLA timers</h3>";
    const timers = (d.sla && d.sla.timers) || [];
    html += timers.length ? "<table><thead><tr><th>Metric</th><th>Status</th><th>Started</th><th>Due</th><th>Met</th>" +
      "<th>Breached</th></tr></thead><tbody>" + timers.map((t) => "<tr><td>" + esc(t.metric) + "</td><td>" +
      tag(t.status) + "</td><td>" + fmtTime(t.started_at, true) + "</td><td>" + fmtTime(t.due_at, true) + "</td><td>" +
      fmtTime(t.met_at, true) + "</td><td>" + fmtTime(t.breached_at, true) + "</td></tr>").join("") + "</tbody></table>"
      : "<p class=\"empty\">No SLA timers.</p>";
    html += "<h3>Routing history</h3>";
    if (!d.router.available) html += '<p class="empty">Routing history unavailable (' + esc(d.router.reason) + ").</p>";
    else {
      const hist = tk.routing_history || [];
      html += hist.length ? "<ol>" + hist.map((h) => "<li>" + fmtTime(h.at, true) + " — <strong>" + esc(h.kind) +
        "</strong>: " + esc(Object.entries(h.changes || {}).map(([k, v]) => k + " → " + JSON.stringify(v)).join(", ")) +
        " <em>(" + esc(h.reason) + ")</em></li>").join("") + "</ol>"
        : '<p class="empty">No routing decisions.</p>';
    }
    html += "<h3>Survey</h3>";
    if (!d.surveys.available) html += '<p class="empty">Survey results unavailable (' + esc(d.surveys.reason) + ").</p>";
    else {
      const s = d.surveys.items || [];
      html += s.length ? "<ul>" + s.map((x) => "<li>" + esc(x.kind) + ": " + esc(x.status) +
        (x.score != null ? ", score <strong>" + esc(x.score) + "</strong>" : "") +
        (x.comment ? " — “" + esc(x.comment) + "”" : "") + "</li>").join("") + "</ul>"
        : '<p class="empty">No survey for this ticket.</p>';
    }
    box.innerHTML = html;
  }

  // --- wiring ---------------------------------------------------------------------------------
  document.addEventListener("click", (ev) => {
    const link = ev.target.closest("a[data-ticket]");
    if (link) { ev.preventDefault(); openDetail(link.dataset.ticket); return; }
    const sortBtn = ev.target.closest("button[data-sort]");
    if (sortBtn) {
      const key = sortBtn.dataset.sort;
      state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
      document.querySelectorAll("#breached th").forEach((th) => th.setAttribute("aria-sort", "none"));
      sortBtn.parentElement.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      scheduleRender();
    }
  });
  $("#window").addEventListener("change", scheduleRender);
  $("#tz").textContent = "Times in " + zone + " (" + offsetText(new Date()) + ")";
  connect();
  loadSnapshot();
  loadAgents();
  loadGoals();
  setInterval(tick, 1000);
  setInterval(loadAgents, 30000);
  setInterval(loadGoals, 60000);
})();
