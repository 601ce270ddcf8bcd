// Live leaderboards: every element [data-board="SLUG"] shows that challenge's board, redrawn
// on each message; a row whose rank changes slides to its new place. Each team has the colour
// the server gave it (the event's one map, the plots' too). The reveal page draws its places
// with the same table (PodiumBoard.table).
"use strict";

const PodiumBoard = (() => {
  // [key, heading, how to show it] per kind: the workbook's rounding (Dice 4, AUC 3, MSE 2).
  const fixed = (digits) => (v) => Number(v).toFixed(digits);
  const whole = (v) => Math.round(Number(v)).toLocaleString("en-GB").replace(/,/g, "\u202f");
  const METRICS = {
    "segmentation-surface": [["dice", "Dice", fixed(4)], ["surface_mse", "MSE", whole],
                             ["score", "Score", whole]],
    "binary-probability": [["auc", "AUC", fixed(3)]],
    "regression": [["mse", "MSE", fixed(2)]],
  };
  const seqs = {};
  let options = {};
  let colours = {};

  function cell(text, className) {
    return Podium.element("td", className, text);
  }

  function value(row, key, show) {
    const v = key === "score" ? row.score : row.metrics && row.metrics[key];
    return v === null || v === undefined ? "" : show(v);
  }

  function swatch(team) {
    const mark = Podium.element("span", "swatch");
    mark.dataset.colour = colours[team] || "";
    mark.setAttribute("aria-hidden", "true");
    // A colour from the server's map, set through the CSSOM (no style attribute).
    if (colours[team]) mark.style.backgroundColor = colours[team];
    return mark;
  }

  function teamCell(team) {
    const td = Podium.element("td", "team");
    const name = Podium.element("span", "team-name", team);
    name.title = team;
    td.append(swatch(team), name);
    return td;
  }

  // A board's table: rows as the API sends them. `time`: show the counted submission's time.
  function table(kind, rows, { time = true } = {}) {
    const columns = METRICS[kind] || [];
    const t = Podium.element("table", `board board-${kind}`);
    const head = t.createTHead().insertRow();
    const titles = [["#", "rank"], ["Team", "team"], ...columns.map((c) => [c[1], "metric"]),
                    ["Sent", "count"], ...(time ? [["At", "time"]] : [])];
    for (const [title, className] of titles) head.append(Podium.element("th", className, title));
    const body = t.createTBody();
    const ranks = rows.map((r) => r.rank);
    for (const row of rows) {
      const tr = document.createElement("tr");
      tr.dataset.team = row.team;
      tr.dataset.rank = row.rank === null ? "" : String(row.rank);
      if (!row.valid) tr.className = "no-valid";
      const shared = row.rank !== null && ranks.filter((r) => r === row.rank).length > 1;
      tr.append(cell(row.rank === null ? "—" : `${row.rank}${shared ? "=" : ""}`, "rank"),
                teamCell(row.team));
      for (const [key, , show] of columns) tr.append(cell(value(row, key, show), "metric"));
      tr.append(cell(String(row.submissions), "count"));
      if (time) tr.append(cell(row.valid ? Podium.formatTime(row.received_at) : "", "time"));
      body.append(tr);
    }
    return t;
  }

  function render(message) {
    const container = document.querySelector(`[data-board="${message.challenge}"]`);
    if (!container) return;
    seqs[message.challenge] = message.seq;
    // FLIP: remember where each team's row was, redraw, then slide from there.
    const before = {};
    for (const tr of container.querySelectorAll("tbody tr")) {
      before[tr.dataset.team] = tr.getBoundingClientRect().top;
    }
    const fresh = table(message.kind, message.rows);
    container.replaceChildren(fresh);
    for (const tr of fresh.tBodies[0].rows) {
      const old = before[tr.dataset.team];
      if (old === undefined) continue;
      const delta = old - tr.getBoundingClientRect().top;
      if (Math.abs(delta) < 1) continue;
      tr.classList.add("moved");
      tr.animate([{ transform: `translateY(${delta}px)` }, { transform: "translateY(0)" }],
                 { duration: 800, easing: "ease-in-out" });
    }
    if (options.analysis) scheduleAnalysis(message.challenge);
    const frozen = document.querySelector(`[data-frozen-of="${message.challenge}"]`);
    if (frozen) frozen.hidden = !message.frozen;
    container.dataset.seq = String(message.seq);
  }

  function unavailable(channel, text) {
    const slug = channel.split(":")[1];
    const container = document.querySelector(`[data-board="${slug}"]`);
    if (container) container.replaceChildren(Podium.element("p", "hint", text));
  }

  // Rank stability as a list: each team with its colour and the share of resamples.
  function stabilityList(stability) {
    const entries = Object.entries(stability || {});
    if (!entries.length) return [];
    const list = Podium.element("ul", "stability-list");
    for (const [team, share] of entries) {
      const item = Podium.element("li");
      item.dataset.team = team;
      item.append(swatch(team), Podium.element("span", "team-name", team),
                  Podium.element("span", "share", `${Math.round(share * 100)} %`));
      list.append(item);
    }
    return [Podium.element("span", "stability-title", "Holds its rank in 1,000 bootstrap resamples:"), list];
  }

  // Plots drawn by the server (every team name escaped there), and the rank stability.
  function showAnalysis(box, data) {
    setColours(data.colours);
    box.querySelector(".stability").replaceChildren(...stabilityList(data.stability));
    box.querySelector(".plots").innerHTML = Object.values(data.plots || {}).join("");
    box.dataset.loaded = String(Object.keys(data.plots || {}).length);
  }

  // Plots and rank stability, refreshed a little after the board changes.
  const timers = {};
  function scheduleAnalysis(slug) {
    clearTimeout(timers[slug]);
    timers[slug] = setTimeout(() => loadAnalysis(slug).catch(() => {}), 1500);
  }

  async function loadAnalysis(slug) {
    const box = document.querySelector(`[data-analysis="${slug}"]`);
    if (!box) return;
    showAnalysis(box, await Podium.api("GET", `/api/v1/challenges/${slug}/analysis`));
  }

  function setColours(map) {
    colours = { ...colours, ...(map || {}) };
  }

  // Connects the page: clock for every [data-clock], boards for every [data-board].
  function start(opts) {
    options = opts || {};
    setColours(options.colours);
    const slugs = [...document.querySelectorAll("[data-board]")].map((el) => el.dataset.board);
    const channels = ["clock", ...slugs.map((s) => `leaderboard:${s}`)];
    Podium.syncClock().catch(() => {});
    Podium.live(channels, (m) => {
      if (m.type === "clock") PodiumClock.update(m.challenges);
      else if (m.type === "leaderboard") render(m);
      else if (m.type === "error" && m.channel) unavailable(m.channel, "Results at the ceremony.");
    });
  }

  return { render, start, table, showAnalysis, setColours, seqs };
})();

// The jury and room boards start from the page's data; the reveal page has its own start.
if (Podium.pageData().challenges) {
  const page = Podium.pageData();
  PodiumClock.update(page.challenges);
  PodiumBoard.start({ analysis: page.analysis, colours: page.colours });
}
