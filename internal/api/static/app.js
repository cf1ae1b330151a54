// btcagent dashboard. Plain browser JavaScript, no libraries and no build
// step: it is embedded in the agent and must work on a farm without internet.
// Miner-supplied strings (worker names, user agents) are only ever set as
// textContent, never parsed as HTML.
"use strict";

(function () {
  const REFRESH_MS = 10000;
  const HISTORY_MS = 60000;
  const NUMERIC_SORTS = ["hashrate", "difficulty", "accepted", "rejected", "last_share", "connected"];

  const state = {
    sort: "-hashrate",
    q: "",
    sub: "", // sub-account filter of the miner table (multi-user listeners)
    offset: 0,
    limit: 100,
    hours: 6,
    samples: [],
    lastSample: 0,
    summary: null,
    loaded: { summary: false, upstreams: false, miners: false, history: false, farm: false },
  };

  const $ = (id) => document.getElementById(id);

  async function getJSON(path) {
    const r = await fetch(path, { credentials: "same-origin", cache: "no-store" });
    if (!r.ok) {
      throw new Error(path.split("?")[0] + ": HTTP " + r.status);
    }
    return r.json();
  }

  // ---- formatting ----

  function fmtHash(h) {
    const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    let i = 0;
    while (h >= 1000 && i < units.length - 1) {
      h /= 1000;
      i++;
    }
    return h.toFixed(2) + " " + units[i];
  }

  function fmtInt(n) {
    return Number(n).toLocaleString("en-US");
  }

  function fmtBytes(n) {
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (n >= 1000 && i < units.length - 1) {
      n /= 1000;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + "d " + h + "h";
    if (h > 0) return h + "h " + m + "m";
    if (m > 0) return m + "m " + (s % 60) + "s";
    return s + "s";
  }

  function fmtAgo(iso, nowMs) {
    if (!iso) return "never";
    return fmtDuration((nowMs - Date.parse(iso)) / 1000) + " ago";
  }

  function fmtDiff(d) {
    if (d === 0) return "–";
    if (d >= 1) return fmtInt(Math.round(d));
    return d.toPrecision(3);
  }

  function pct(part, whole) {
    return whole > 0 ? (100 * part / whole).toFixed(2) + " %" : "–";
  }

  // ---- DOM helpers ----

  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (k === "text") e.textContent = v;
        else if (k === "class") e.className = v;
        else if (k.startsWith("data-")) e.setAttribute(k, String(v));
        else e.setAttribute(k, v);
      }
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  // stat shows text and keeps the raw number in data-value, so that tools
  // (and the agent's own browser test) can read exact values.
  function stat(node, raw, text) {
    node.textContent = text;
    node.dataset.value = String(raw);
  }

  function replaceRows(tbody, rows, emptyText, cols) {
    tbody.replaceChildren();
    if (rows.length === 0) {
      tbody.appendChild(el("tr", { class: "empty" }, [el("td", { text: emptyText, colspan: String(cols) })]));
      return;
    }
    for (const r of rows) tbody.appendChild(r);
  }

  // ---- summary ----

  function renderSummary(s) {
    state.summary = s;
    $("version").textContent = "version " + s.version;
    stat($("total-hashrate"), s.hashrate, fmtHash(s.hashrate));
    stat($("total-miners"), s.miners, fmtInt(s.miners));
    stat($("total-authorized"), s.authorized, fmtInt(s.authorized));
    stat($("total-accepted"), s.accepted, fmtInt(s.accepted));
    stat($("total-rejected"), s.rejected, fmtInt(s.rejected));
    stat($("uptime"), s.uptime_seconds, fmtDuration(s.uptime_seconds));

    const cards = s.listeners.map((l) => {
      const dd = (field, raw, text) => el("dd", { "data-field": field, "data-value": raw, text: text });
      const up = l.upstreams;
      const upText = up.error ? "no answer" : up.ready + " / " + up.total + " ready";
      const card = el("article", { class: "card" + (up.ready === 0 ? " bad" : ""), "data-listener": l.name }, [
        el("h3", {}, [
          document.createTextNode(l.name + " "),
          el("span", { class: "muted", text: ":" + l.port + " → " + (l.multi_user ? "multi-user" : l.pool_user) }),
        ]),
        el("dl", {}, [
          el("dt", { text: "Hashrate" }), dd("hashrate", l.hashrate, fmtHash(l.hashrate)),
          el("dt", { text: "Miners" }), dd("miners", l.miners, fmtInt(l.miners)),
          el("dt", { text: "Authorized" }), dd("authorized", l.authorized, fmtInt(l.authorized)),
          el("dt", { text: "Accepted" }), dd("accepted", l.shares.accepted, fmtInt(l.shares.accepted)),
          el("dt", { text: "Rejected" }), dd("rejected", l.shares.rejected, fmtInt(l.shares.rejected) + " (" + pct(l.shares.rejected, l.shares.accepted + l.shares.rejected) + ")"),
          el("dt", { text: "Unpaid (fake)" }), dd("fake", l.shares.fake, fmtInt(l.shares.fake)),
          el("dt", { text: "Pool links" }), dd("upstreams-ready", up.ready, upText),
          el("dt", { text: "Pool traffic" }), dd("bytes-up", l.pool_link.bytes_up, "↑ " + fmtBytes(l.pool_link.bytes_up) + "  ↓ " + fmtBytes(l.pool_link.bytes_down)),
          el("dt", { text: "Reconnects" }), dd("reconnects", l.pool_link.reconnects, fmtInt(l.pool_link.reconnects) + " (failovers " + fmtInt(l.pool_link.failovers) + ")"),
          el("dt", { text: "Job fan-out p99" }), dd("fanout-p99", l.job_fanout.p99_ms, l.job_fanout.count ? l.job_fanout.p99_ms.toFixed(2) + " ms" : "–"),
        ]),
      ]);
      if (l.multi_user) card.appendChild(subAccountTable(l));
      return card;
    });
    $("listeners").replaceChildren(...cards);

    const rows = [];
    for (const l of s.listeners) {
      const total = l.shares.accepted + l.shares.rejected;
      const reasons = Object.keys(l.shares.rejected_by_reason).sort();
      for (const r of reasons) {
        const n = l.shares.rejected_by_reason[r];
        rows.push(el("tr", { "data-listener": l.name, "data-reason": r }, [
          el("td", { text: l.name }),
          el("td", { text: r }),
          el("td", { class: "num", "data-value": n, text: fmtInt(n) }),
          el("td", { class: "num", text: pct(n, total) }),
        ]));
      }
    }
    replaceRows($("rejects").tBodies[0], rows, "No rejected shares.", 4);
  }

  // subAccountTable lists a multi-user listener's sub-accounts; clicking
  // one filters the miner table to its miners.
  function subAccountTable(l) {
    const now = Date.now();
    const refused = Object.values(l.refused).reduce((a, b) => a + b, 0);
    const rows = l.sub_accounts.map((sa) => {
      const tr = el("tr", { "data-sub-account": sa.name, class: "clickable", title: "Show " + sa.name + "'s miners" }, [
        el("td", { text: sa.name }),
        el("td", { class: "num", "data-field": "miners", "data-value": sa.miners, text: fmtInt(sa.miners) }),
        el("td", { class: "num", "data-field": "hashrate", "data-value": sa.hashrate, text: fmtHash(sa.hashrate) }),
        el("td", { class: "num", "data-field": "accepted", "data-value": sa.shares.accepted, text: fmtInt(sa.shares.accepted) }),
        el("td", { class: "num", "data-field": "rejected", "data-value": sa.shares.rejected, text: fmtInt(sa.shares.rejected) }),
        el("td", { class: sa.upstreams.ready === 0 ? "bad" : "", "data-field": "links", "data-value": sa.upstreams.ready, text: sa.upstreams.ready + "/" + sa.upstreams.total }),
        el("td", { class: "muted", "data-field": "idle", text: sa.idle_since ? "idle " + fmtAgo(sa.idle_since, now) : "" }),
      ]);
      tr.addEventListener("click", () => setSubFilter(sa.name));
      return tr;
    });
    const table = el("table", { class: "subaccounts", "data-listener": l.name }, [
      el("caption", { text: "Sub-accounts " + l.sub_accounts.length + " / " + l.sub_accounts_max + (refused ? " · refused " + fmtInt(refused) : "") }),
      el("thead", {}, [el("tr", {}, ["Name", "Miners", "Hashrate", "Accepted", "Rejected", "Links", ""].map((h) => el("th", { text: h })))]),
      el("tbody", {}),
    ]);
    replaceRows(table.tBodies[0], rows, "No sub-account has miners yet.", 7);
    return table;
  }

  function setSubFilter(name) {
    state.sub = name;
    state.offset = 0;
    $("miner-sub").value = name;
    loadMiners().catch(setStatus);
  }

  // ---- pool links ----

  function renderUpstreams(u) {
    const rows = u.upstreams.map((x) => el("tr", { "data-listener": x.listener, "data-slot": x.slot, "data-ready": x.ready, "data-protocol": x.protocol }, [
      el("td", { text: x.listener }),
      el("td", { class: "num", text: String(x.slot) }),
      el("td", { text: x.route || "default" }),
      el("td", { text: x.pool || "–" }),
      el("td", { text: x.protocol || "–" }),
      el("td", { class: x.ready ? "ok" : "bad", text: x.ready ? "ready" : "down" }),
      el("td", { class: "num", "data-value": x.miners, text: fmtInt(x.miners) }),
    ]));
    for (const [name, err] of Object.entries(u.errors || {})) {
      rows.push(el("tr", { "data-listener": name }, [el("td", { text: name }), el("td", { class: "bad", colspan: "6", text: err })]));
    }
    replaceRows($("upstreams").tBodies[0], rows, "No pool links.", 7);
  }

  // ---- miners ----

  function minersURL() {
    const p = new URLSearchParams({ sort: state.sort, limit: String(state.limit), offset: String(state.offset) });
    if (state.q) p.set("q", state.q);
    if (state.sub) p.set("sub_account", state.sub);
    return "api/v1/miners?" + p.toString();
  }

  function renderMiners(page) {
    const now = Date.now();
    const rows = page.miners.map((m) => el("tr", { "data-session": m.session_id, "data-listener": m.listener }, [
      el("td", { "data-field": "worker", text: m.worker || "(not authorized)" }),
      el("td", { text: m.address }),
      el("td", { class: "muted", text: m.user_agent }),
      el("td", { class: "num", "data-field": "hashrate", "data-value": m.hashrate, text: fmtHash(m.hashrate) }),
      el("td", { class: "num", text: fmtDiff(m.difficulty) }),
      el("td", { class: "num", "data-field": "accepted", "data-value": m.accepted, text: fmtInt(m.accepted) }),
      el("td", { class: "num", "data-field": "rejected", "data-value": m.rejected, text: fmtInt(m.rejected) }),
      el("td", { text: fmtAgo(m.last_share, now) }),
      el("td", { class: m.upstream ? "" : "bad", text: m.upstream || "none" }),
      el("td", { class: statusClass(m.status), "data-field": "status", "data-value": m.status, text: m.status }),
    ]));
    const filtered = state.q || state.sub;
    replaceRows($("miners").tBodies[0], rows, filtered ? "No miner matches." : "No miners connected.", 10);
    stat($("miner-total"), page.total, "(" + fmtInt(page.total) + (filtered ? " matching" : "") + ")");
    const first = page.total === 0 ? 0 : page.offset + 1;
    $("miner-page").textContent = first + "–" + (page.offset + page.miners.length) + " of " + fmtInt(page.total);
    $("miner-prev").disabled = page.offset === 0;
    $("miner-next").disabled = page.offset + page.miners.length >= page.total;
    for (const th of document.querySelectorAll("#miners th[data-sort]")) {
      const key = th.dataset.sort;
      th.classList.toggle("asc", state.sort === key);
      th.classList.toggle("desc", state.sort === "-" + key);
      th.setAttribute("aria-sort", state.sort === key ? "ascending" : state.sort === "-" + key ? "descending" : "none");
    }
  }

  async function loadMiners() {
    renderMiners(await getJSON(minersURL()));
    done("miners");
  }

  // ---- offline / slow panel ----

  function statusClass(st) {
    return st === "offline" ? "bad" : st === "slow" || st === "idle" ? "warn" : "ok";
  }

  // The miners that need a visit, longest first. Offline rows show the last
  // address, so that someone can walk to the rack.
  function renderFarm(f) {
    const now = Date.now();
    for (const st of ["offline", "slow", "idle", "online"]) {
      const n = f.counts[st] || 0;
      stat($("farm-" + st), n, fmtInt(n));
    }
    const rows = f.problems.map((m) => el("tr", { "data-problem": m.worker, "data-listener": m.listener, "data-status": m.status }, [
      el("td", { class: statusClass(m.status), "data-field": "status", "data-value": m.status, text: m.status }),
      el("td", { "data-field": "since", "data-value": m.status_since || "", text: m.status_since ? fmtDuration((now - Date.parse(m.status_since)) / 1000) : "–" }),
      el("td", { "data-field": "worker", text: m.worker }),
      el("td", { text: m.listener }),
      el("td", { "data-field": "address", "data-value": m.address, text: m.address || "–" }),
      el("td", { text: fmtAgo(m.last_seen, now) }),
      el("td", { class: "num", text: m.status === "offline" ? "–" : fmtHash(m.hashrate) }),
      el("td", { class: "num", text: m.average_hashrate ? fmtHash(m.average_hashrate) : "–" }),
      el("td", { class: "muted", text: m.user_agent }),
    ]));
    replaceRows($("problems").tBodies[0], rows, "Every known miner is online.", 9);
    const more = f.problems_total - f.problems.length;
    $("problems-more").textContent = more > 0 ? "… and " + fmtInt(more) + " more (see /api/v1/miners?status=offline,slow,idle)" : "";
    $("farm-panel").classList.toggle("alarm", (f.counts.offline || 0) + (f.counts.slow || 0) > 0);
  }

  async function loadFarm() {
    renderFarm(await getJSON("api/v1/farm"));
    done("farm");
  }

  // ---- history chart (hand-drawn SVG) ----

  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function renderChart() {
    const box = $("chart");
    const now = Date.now() / 1000;
    const from = now - state.hours * 3600;
    const pts = state.samples.filter((s) => s.t >= from).map((s) => ({ t: s.t, h: s.hashrate }));
    if (state.summary) pts.push({ t: now, h: state.summary.hashrate });
    box.dataset.points = String(pts.length);
    if (pts.length < 2) {
      box.replaceChildren(el("p", { class: "muted", text: "Collecting: one point per minute." }));
      return;
    }
    const W = Math.max(320, box.clientWidth || 800), H = 220;
    const L = 78, R = 12, T = 10, B = 26;
    const maxH = Math.max(...pts.map((p) => p.h)) * 1.1 || 1;
    const x = (t) => L + (t - from) / (now - from) * (W - L - R);
    const y = (h) => T + (1 - h / maxH) * (H - T - B);
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "aria-label": "Farm hashrate, last " + state.hours + " hours" });

    for (let i = 0; i <= 4; i++) {
      const v = maxH * i / 4, yy = y(v);
      root.appendChild(svg("line", { x1: L, x2: W - R, y1: yy, y2: yy, class: "grid" }));
      root.appendChild(svg("text", { x: L - 6, y: yy + 4, "text-anchor": "end", class: "axis" }, fmtHash(v)));
    }
    const stepH = state.hours <= 1 ? 0.25 : state.hours <= 6 ? 1 : 4;
    const step = stepH * 3600;
    for (let t = Math.ceil(from / step) * step; t <= now; t += step) {
      const d = new Date(t * 1000);
      const label = String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
      root.appendChild(svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid" }));
      root.appendChild(svg("text", { x: x(t), y: H - 8, "text-anchor": "middle", class: "axis" }, label));
    }
    const line = pts.map((p) => x(p.t).toFixed(1) + "," + y(p.h).toFixed(1)).join(" ");
    const area = "M" + x(pts[0].t).toFixed(1) + "," + y(0) + " L" + line.replaceAll(" ", " L") + " L" + x(pts[pts.length - 1].t).toFixed(1) + "," + y(0) + " Z";
    root.appendChild(svg("path", { d: area, class: "area" }));
    root.appendChild(svg("polyline", { points: line, class: "line" }));

    const cursor = svg("line", { y1: T, y2: H - B, class: "cursor", visibility: "hidden" });
    const tip = svg("text", { y: T + 12, class: "tip", visibility: "hidden" });
    root.appendChild(cursor);
    root.appendChild(tip);
    root.addEventListener("mousemove", (ev) => {
      const r = root.getBoundingClientRect();
      const px = (ev.clientX - r.left) * W / r.width;
      let best = pts[0];
      for (const p of pts) if (Math.abs(x(p.t) - px) < Math.abs(x(best.t) - px)) best = p;
      const d = new Date(best.t * 1000);
      cursor.setAttribute("x1", x(best.t));
      cursor.setAttribute("x2", x(best.t));
      tip.setAttribute("x", Math.min(x(best.t) + 6, W - 170));
      tip.textContent = d.toLocaleTimeString() + "  " + fmtHash(best.h);
      cursor.setAttribute("visibility", "visible");
      tip.setAttribute("visibility", "visible");
    });
    root.addEventListener("mouseleave", () => {
      cursor.setAttribute("visibility", "hidden");
      tip.setAttribute("visibility", "hidden");
    });
    box.replaceChildren(root);
  }

  async function loadHistory() {
    const h = await getJSON("api/v1/history?since=" + state.lastSample);
    if (h.samples.length > 0) {
      state.samples = state.samples.concat(h.samples).slice(-h.capacity);
      state.lastSample = h.samples[h.samples.length - 1].t;
    }
    renderChart();
    done("history");
  }

  // ---- refresh loop ----

  function done(part) {
    state.loaded[part] = true;
    if (Object.values(state.loaded).every(Boolean)) document.body.dataset.ready = "1";
  }

  function setStatus(err) {
    const s = $("status");
    if (err) {
      s.textContent = "update failed: " + err.message;
      s.className = "bad";
      document.body.dataset.error = err.message;
    } else {
      s.textContent = "updated " + new Date().toLocaleTimeString();
      s.className = "muted";
      delete document.body.dataset.error;
    }
  }

  async function refresh() {
    try {
      const [s, u] = await Promise.all([getJSON("api/v1/summary"), getJSON("api/v1/upstreams")]);
      renderSummary(s);
      done("summary");
      renderUpstreams(u);
      done("upstreams");
      await loadFarm();
      await loadMiners();
      renderChart();
      setStatus(null);
    } catch (e) {
      setStatus(e);
    }
  }

  async function refreshHistory() {
    try {
      await loadHistory();
    } catch (e) {
      setStatus(e);
    }
  }

  function init() {
    let searchTimer = 0;
    $("miner-search").addEventListener("input", (ev) => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => {
        state.q = ev.target.value.trim();
        state.offset = 0;
        loadMiners().catch(setStatus);
      }, 250);
    });
    let subTimer = 0;
    $("miner-sub").addEventListener("input", (ev) => {
      clearTimeout(subTimer);
      subTimer = setTimeout(() => setSubFilter(ev.target.value.trim()), 250);
    });
    for (const th of document.querySelectorAll("#miners th[data-sort]")) {
      th.tabIndex = 0;
      const pick = () => {
        const key = th.dataset.sort;
        if (state.sort === key) state.sort = "-" + key;
        else if (state.sort === "-" + key) state.sort = key;
        else state.sort = NUMERIC_SORTS.includes(key) ? "-" + key : key;
        state.offset = 0;
        loadMiners().catch(setStatus);
      };
      th.addEventListener("click", pick);
      th.addEventListener("keydown", (ev) => { if (ev.key === "Enter") pick(); });
    }
    $("miner-prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - state.limit);
      loadMiners().catch(setStatus);
    });
    $("miner-next").addEventListener("click", () => {
      state.offset += state.limit;
      loadMiners().catch(setStatus);
    });
    for (const b of document.querySelectorAll(".range button")) {
      b.addEventListener("click", () => {
        state.hours = Number(b.dataset.hours);
        for (const o of document.querySelectorAll(".range button")) o.classList.toggle("on", o === b);
        renderChart();
      });
    }
    window.addEventListener("resize", renderChart);
    refresh();
    refreshHistory();
    setInterval(refresh, REFRESH_MS);
    setInterval(refreshHistory, HISTORY_MS);
  }

  init();
})();
