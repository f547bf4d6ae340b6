// The duty office's console. Everything the board shows comes pushed over server-sent
// events (/api/stream); this script never polls for alerts. No external resource is used.
// The city hub serves the same board in multi-compound mode (`data-mode="city"`): every
// alert with its compound, a compound filter, the latest events, and no accounts.
"use strict";

(function () {
  const body = document.body;
  const W = JSON.parse(document.getElementById("words").textContent);
  const csrf = body.dataset.csrf;
  const officer = body.dataset.role === "officer";
  const city = body.dataset.mode === "city";
  const state = { soundsPlayed: 0, boards: 0, stream: "connecting", armed: false };
  window.scgwConsole = state;
  let serverNow = Date.now();
  let receivedAt = Date.now();
  let seen = null; // alert ids on the previous board; null before the first

  function t(key, params) {
    let text = W[key] !== undefined ? W[key] : key;
    for (const [k, v] of Object.entries(params || {})) text = text.split("{" + k + "}").join(v);
    return text;
  }
  function word(prefix, id) {
    return W[prefix + "." + id] !== undefined ? W[prefix + "." + id] : id;
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  function now() { return serverNow + (Date.now() - receivedAt); }
  function duration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (h ? h + ":" + two(m) : String(m)) + ":" + two(sec);
  }
  function clockText(ms) {
    const d = new Date(ms);
    return d.toLocaleTimeString(body.dataset.lang, { hour12: false });
  }
  function place(p) {
    if (!p) return "";
    const parts = [];
    if (p.building !== undefined) {
      // "3号楼", but a named building ("east-gate") as it is named
      parts.push(/^\d+$/.test(p.building) ? t("place.building", { b: p.building }) : p.building);
    }
    if (p.unit !== undefined) parts.push(t("place.unit", { u: p.unit }));
    if (p.floor !== undefined) parts.push(t("place.floor", { f: p.floor }));
    return parts.join(body.dataset.lang === "zh-CN" ? "" : ", ");
  }
  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(data || {}),
    });
    if (response.status === 401 && !city) { location.href = "/login"; }
    if (!response.ok) {
      let why = response.statusText;
      try { why = (await response.json()).error || why; } catch (e) { /* not JSON */ }
      throw new Error(why);
    }
    return response.json();
  }
  function banner(id, text) {
    const node = document.getElementById(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  // -- sound: browsers allow it only after the user interacted; one click arms it ---------
  let audio = null;
  function beep(times) {
    if (!audio || audio.state !== "running") return false;
    for (let i = 0; i < times; i++) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      const start = audio.currentTime + i * 0.35;
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.2, start);
      gain.gain.setValueAtTime(0, start + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start(start);
      osc.stop(start + 0.3);
    }
    state.soundsPlayed += 1;
    return true;
  }
  function showSound() {
    state.armed = !!audio && audio.state === "running";
    const button = document.getElementById("sound");
    button.textContent = state.armed ? t("sound.armed") : t("sound.unarmed");
    button.className = state.armed ? "armed" : "unarmed";
    if (state.armed) banner("sound-needed", "");
  }
  document.getElementById("sound").addEventListener("click", async () => {
    if (!audio) {
      audio = new AudioContext();
      audio.addEventListener("statechange", showSound);
    }
    await audio.resume();
    showSound();
  });

  // -- header -------------------------------------------------------------------------
  if (!city) {
    document.getElementById("who").textContent =
      body.dataset.user + (officer ? "" : " " + t("viewer"));
    document.getElementById("logout").addEventListener("click", async () => {
      try { await post("/logout"); } finally { location.href = "/login"; }
    });
    document.getElementById("language").addEventListener("click", async () => {
      await post("/api/language", { language: body.dataset.lang === "zh-CN" ? "en" : "zh-CN" });
      location.reload();
    });
  }
  // the city board's compound filter: "" is every compound; kept in the address
  const filter = city ? document.getElementById("compound-filter") : null;
  let chosen = wantedCompound();
  function wantedCompound() {
    return new URLSearchParams(location.search).get("compound") || "";
  }
  function shown(compound) { return !chosen || compound === chosen; }
  // the other language keeps the compound chosen
  function languageLink() {
    const params = new URLSearchParams(location.search);
    params.set("lang", body.dataset.lang === "zh-CN" ? "en" : "zh-CN");
    document.getElementById("language").setAttribute("href", "?" + params.toString());
  }
  if (filter) {
    filter.addEventListener("change", () => {
      chosen = filter.value;
      const params = new URLSearchParams(location.search);
      if (chosen) params.set("compound", chosen); else params.delete("compound");
      history.replaceState(null, "", "?" + params.toString());
      languageLink();
      applyFilter();
    });
    languageLink();
  }

  // -- the board ------------------------------------------------------------------------
  const main = document.getElementById("main");
  const sections = {};
  if (body.dataset.page === "board") {
    for (const [name, title] of [["critical", t("critical")], ["others", t("others")]]) {
      const list = el("div", { class: "alerts", id: name + "-alerts" });
      sections[name] = list;
      main.append(el("section", { class: name, id: name }, el("h2", {}, title), list));
    }
    main.append(el("p", { id: "none", hidden: "" }, t("none")));
    if (city) {
      main.append(el("section", { class: "events", id: "events" },
        el("h2", {}, t("city.events")),
        el("table", { id: "events-table" }, el("thead", {}, el("tr", {},
          ...["city.time", "city.compound", "devices.kind", "devices.id", "city.type",
              "city.class", "city.where"].map((k) => el("th", {}, t(k))))),
          el("tbody", { id: "events-rows" }))));
    }
  }
  function cardId(alert) { return alert.key || alert.id; }

  function timeline(alert) {
    return el("ol", { class: "timeline" }, ...alert.timeline.map((e) => el(
      "li", { class: "entry " + e.what },
      el("time", {}, clockText(e.ts)), " ",
      t("entry." + e.what, { group: word("group", e.group || "") }),
      e.by ? " · " + e.by : "", e.note ? " · " + e.note : "")));
  }
  function escalation(alert) {
    const esc = alert.escalation;
    const notified = alert.timeline.filter((e) => e.what === "notified")
      .map((e) => word("group", e.group) + " " + clockText(e.ts));
    let step = t("step.none"), next = t("next.none");
    if (esc) {
      step = esc.reached >= esc.groups.length && esc.next_at === null ? t("step.done")
        : t("step.of", { n: esc.reached, total: esc.groups.length });
      if (esc.next_at !== null) {
        next = el("span", { class: "next", "data-next": esc.next_at,
                            "data-group": word("group", esc.next_group) });
      }
    }
    return el("dl", { class: "escalation" },
      el("dt", {}, t("step")), el("dd", { class: "step" }, step),
      el("dt", {}, t("notified")), el("dd", { class: "notified" }, notified.join("、") || "—"),
      el("dt", {}, t("next")), el("dd", {}, next));
  }
  function actions(alert) {
    const box = el("div", { class: "actions" });
    const ack = el("div", { class: "ack" },
      el("textarea", { id: "ack-note-" + alert.id, placeholder: t("ack.note"), maxlength: 500 }),
      el("button", { type: "button", id: "ack-" + alert.id, class: "ack-button" }, t("ack")));
    ack.querySelector("button").addEventListener("click", async (ev) => {
      ev.target.disabled = true;
      try {
        await post("/api/alerts/" + alert.id + "/ack",
                   { note: document.getElementById("ack-note-" + alert.id).value });
      } catch (e) { banner("stream", t("error") + ": " + e.message); ev.target.disabled = false; }
    });
    const note = el("div", { class: "note" },
      el("textarea", { id: "note-" + alert.id, placeholder: t("note.text"), maxlength: 500 }),
      el("button", { type: "button", id: "note-button-" + alert.id }, t("note.add")));
    note.querySelector("button").addEventListener("click", async () => {
      const area = document.getElementById("note-" + alert.id);
      try { await post("/api/alerts/" + alert.id + "/note", { note: area.value }); area.value = ""; }
      catch (e) { banner("stream", t("error") + ": " + e.message); }
    });
    box.append(ack, note);
    if (alert.resolvable) {
      const resolve = el("div", { class: "resolve" },
        el("textarea", { id: "resolve-reason-" + alert.id, placeholder: t("resolve.reason"),
                         maxlength: 500 }),
        el("button", { type: "button", id: "resolve-" + alert.id }, t("resolve")));
      resolve.querySelector("button").addEventListener("click", async (ev) => {
        const area = document.getElementById("resolve-reason-" + alert.id);
        if (!area.value.trim()) { area.focus(); return; }
        ev.target.disabled = true;
        try { await post("/api/alerts/" + alert.id + "/resolve", { note: area.value }); }
        catch (e) { banner("stream", t("error") + ": " + e.message); ev.target.disabled = false; }
      });
      box.append(resolve);
    }
    return box;
  }
  // the city board acknowledges at the compound's gateway, where the hub grants it
  function cityActions(alert) {
    const button = el("button", { type: "button", id: "ack-" + alert.key, class: "ack-button" },
      t("ack"));
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await post("/api/alerts/" + alert.key + "/ack");
      } catch (e) { banner("stream", t("error") + ": " + e.message); button.disabled = false; }
    });
    return el("div", { class: "actions" }, el("div", { class: "ack" }, button));
  }
  function card(alert) {
    let node = document.getElementById("alert-" + cardId(alert));
    if (!node) {
      node = el("article", { id: "alert-" + cardId(alert), class: "alert" },
        el("div", { class: "info" }), el("div", { class: "detail" }));
      if (officer) node.append(actions(alert));
      if (city && body.dataset.user) node.append(cityActions(alert));
    }
    if (city) node.dataset.compound = alert.compound;
    node.dataset.state = alert.state;
    node.dataset.severity = alert.severity;
    node.dataset.rule = alert.rule;
    node.dataset.device = alert.device;
    node.className = "alert " + alert.severity + " " + alert.state
      + (node.classList.contains("focus") ? " focus" : "");
    const info = node.querySelector(".info");
    info.replaceChildren(...[
      city ? el("p", { class: "compound" }, alert.compound) : null,
      el("h3", { class: "what" }, word("rule", alert.rule)),
      el("span", { class: "severity" }, word("severity", alert.severity)),
      el("span", { class: "state" }, word("state", alert.state) +
        (alert.by ? " · " + t("ack.by", { by: alert.by }) : "")),
      el("p", { class: "where" }, word("kind", alert.kind) + " " + alert.device +
        (alert.place ? " · " + place(alert.place) : "")),
      el("p", { class: "since" }, t("since") + " ",
        el("span", { class: "running", "data-since": alert.since }, "")),
      el("p", { class: "message" }, alert.message)].filter((n) => n !== null));
    // the city does not know a compound's escalation: its duty office does
    node.querySelector(".detail").replaceChildren(...[city ? null : escalation(alert),
      el("details", { open: "" }, el("summary", {}, t("timeline")), timeline(alert))]
      .filter((n) => n !== null));
    const ack = node.querySelector(".ack");
    if (ack) ack.hidden = alert.state !== "firing" || (city && !alert.ackable);
    return node;
  }
  function render(board) {
    serverNow = board.now;
    receivedAt = Date.now();
    state.boards += 1;
    if (city) {
      banner("syncing", board.synced ? "" : t("city.syncing"));
    } else {
      banner("broker", board.broker ? "" : t("broker.down"));
      const down = (board.upstreams || []).filter((u) => u.state === "down");
      banner("upstreams", down.length ? t("upstreams.down", {
        names: down.map((u) => u.name + " (" + u.backlog + ")").join(", ") }) : "");
    }
    if (body.dataset.page !== "board") { refresh(); return; }
    const ids = new Set(board.alerts.map(cardId));
    for (const node of document.querySelectorAll("article.alert")) {
      if (!ids.has(node.id.slice(6))) node.remove();
    }
    for (const name of ["critical", "others"]) {
      const list = board.alerts.filter((a) => (a.severity === "critical") === (name === "critical"));
      sections[name].append(...list.map(card)); // append moves: the order is the board's
    }
    if (city) renderCity(board);
    applyFilter();
    const fresh = board.alerts.filter((a) => seen !== null && !seen.has(cardId(a))
      && a.severity === "critical" && a.state === "firing");
    if (fresh.length) {
      if (!beep(3)) banner("sound-needed", t("sound.needed"));
    }
    seen = ids;
    tick();
    focus();
  }
  // the city board: the compounds in the filter, and the latest events
  function renderCity(board) {
    const options = [el("option", { value: "" }, t("city.all"))];
    const known = new Set();
    for (const c of board.compounds) {
      known.add(c.compound);
      options.push(el("option", { value: c.compound }, c.compound + " (" + c.active + " · "
        + c.events + ")"));
    }
    if (chosen && !known.has(chosen)) options.push(el("option", { value: chosen }, chosen));
    // only when the list changed: an open list is not closed under the officer's hand
    const listed = options.map((o) => o.value + "=" + o.textContent).join("\n");
    if (filter.dataset.listed !== listed) {
      filter.replaceChildren(...options);
      filter.dataset.listed = listed;
    }
    filter.value = chosen;
    document.getElementById("events-rows").replaceChildren(...board.events.map((e) => el("tr", {
      class: "event " + e.cls, "data-compound": e.compound, "data-id": e.id },
      el("td", {}, clockText(e.ts)), el("td", {}, e.compound), el("td", {}, word("kind", e.kind)),
      el("td", {}, e.device), el("td", {}, e.type), el("td", {}, word("class", e.cls)),
      el("td", {}, place(e.place)))));
  }
  function applyFilter() {
    if (body.dataset.page !== "board") return;
    let visible = 0;
    for (const name of ["critical", "others"]) {
      let here = 0;
      for (const node of sections[name].querySelectorAll("article.alert")) {
        node.hidden = city && !shown(node.dataset.compound);
        if (!node.hidden) here += 1;
      }
      sections[name].parentNode.hidden = here === 0;
      visible += here;
    }
    for (const row of document.querySelectorAll("tr.event")) {
      row.hidden = !shown(row.dataset.compound);
    }
    document.getElementById("none").hidden = visible > 0;
  }
  // a link from elsewhere (Grafana's active alarms) names an alert by rule and device
  const wanted = new URLSearchParams(location.search);
  let focused = !wanted.has("rule");
  function focus() {
    if (focused) return;
    for (const node of document.querySelectorAll("article.alert")) {
      if (node.dataset.rule === wanted.get("rule")
          && node.dataset.device === wanted.get("device")) {
        node.classList.add("focus");
        node.scrollIntoView({ block: "center" });
        focused = true;
      }
    }
  }
  function tick() {
    const at = now();
    document.getElementById("clock").textContent = clockText(at);
    for (const node of document.querySelectorAll("[data-since]")) {
      node.textContent = duration(at - Number(node.dataset.since));
    }
    for (const node of document.querySelectorAll("[data-next]")) {
      node.textContent = t("next.at", { group: node.dataset.group,
                                        left: duration(Number(node.dataset.next) - at) });
    }
  }
  setInterval(tick, 1000);

  // -- devices and shift pages: the same stream tells them when to read again ----------
  async function refresh() {
    const page = body.dataset.page;
    const url = page === "devices" ? "/api/devices" : "/api/shift";
    const response = await fetch(url, { credentials: "same-origin" });
    if (response.status === 401) { location.href = "/login"; return; }
    const data = await response.json();
    if (page === "devices") renderDevices(data); else renderShift(data);
  }
  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows.map((r) => el("tr", { class: r.class || "" },
        ...r.cells.map((c) => el("td", {}, c))))));
  }
  function renderDevices(data) {
    main.replaceChildren(el("h2", {}, t("devices.title")), table(
      [t("devices.id"), t("devices.kind"), t("devices.place"), t("devices.status"),
       t("devices.last_seen"), t("devices.battery"), t("devices.rejected")],
      data.devices.map((d) => ({ class: d.status, cells: [d.id, word("kind", d.kind),
        place(d.place), word("state", d.status),
        d.last_seen ? clockText(d.last_seen) : "—",
        d.battery === null ? "—" : Math.round(d.battery) + "%", d.rejected] }))));
  }
  function renderShift(data) {
    const row = (a) => ({ class: a.state, cells: [clockText(a.since), word("rule", a.rule),
      a.device, word("severity", a.severity), word("state", a.state), a.by || "—",
      a.ack_ms === null ? "—" : duration(a.ack_ms), a.notes.join(" / ")] });
    const heads = ["shift.since", "shift.what", "shift.device", "shift.severity", "shift.state",
                   "shift.by", "shift.ack_time", "shift.notes"].map((k) => t(k));
    main.replaceChildren(
      el("h2", {}, t("shift.open")),
      table(heads, data.alerts.filter((a) => a.state !== "resolved").map(row)),
      el("h2", {}, t("shift.all")), table(heads, data.alerts.map(row)),
      el("h2", {}, t("shift.median")),
      table([t("shift.severity"), t("shift.ack_time")],
        Object.entries(data.median_ack_ms).map(([s, ms]) => ({
          cells: [word("severity", s), duration(ms)] }))),
      el("h2", {}, t("shift.access")),
      table([t("shift.time"), t("shift.user"), t("shift.action"), t("shift.address")],
        (data.access || []).map((e) => ({ class: e.what, cells: [clockText(e.ts), e.user,
          word("access", e.what), e.address || "—"] }))));
  }

  // -- the stream -------------------------------------------------------------------------
  let source = null;
  function connect() {
    source = new EventSource("/api/stream");
    source.addEventListener("open", () => { state.stream = "open"; banner("stream", ""); });
    source.addEventListener("board", (ev) => render(JSON.parse(ev.data)));
    source.addEventListener("error", async () => {
      state.stream = "broken";
      banner("stream", t("stream.broken"));
      if (source.readyState === EventSource.CLOSED) {
        // the server answered, but not with a stream: a session that ended, or a restart
        setTimeout(async () => {
          try {
            const response = await fetch("/api/board", { credentials: "same-origin" });
            if (response.status === 401) { location.href = "/login"; return; }
          } catch (e) { /* the gateway is not back yet */ }
          connect();
        }, 1000);
      }
    });
  }
  showSound();
  connect();
})();
