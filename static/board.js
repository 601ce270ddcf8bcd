// Live leaderboards: every element [data-board="SLUG"] shows that challenge's board, redrawn
// on each message; a row whose rank changes slides to its new place. Each team has the colour
// the server gave it (the event's one map, the plots' too). The reveal page draws its places
// with the same table (PodiumBoard.table).
"use strict";

const PodiumBoard = (() => {
  // A number as its column says: `digits` decimals, thousands apart by a thin space when
  // `grouped` (the columns come with every board, from the challenge's kind).
  function shown(v, column) {
    const text = Number(v).toFixed(column.digits);
    if (!column.grouped) return text;
    const [whole, decimals] = text.split(".");
    const spaced = whole.replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
    return decimals === undefined ? spaced : `${spaced}.${decimals}`;
  }
  const seqs = {};
  let options = {};
  let colours = {};

  function cell(text, className) {
    return Podium.element("td", className, text);
  }

  // A metric column's cells: wider for large grouped numbers, narrower for small whole ones.
  function metricClass(column) {
    if (column.grouped) return "metric wide";
    return column.digits === 0 ? "metric narrow" : "metric";
  }

  function value(row, column) {
    const v = column.key === "score" ? row.score : row.metrics && row.metrics[column.key];
    return v === null || v === undefined ? "" : shown(v, column);
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

  // A board's table: rows and columns as the API sends them. `time`: show the counted
  // submission's time.
  function table(columns, rows, { time = true } = {}) {
    const t = Podium.element("table", "board");
    const head = t.createTHead().insertRow();
    const titles = [["#", "rank"], ["Team", "team"], ...columns.map((c) => [c.label, metricClass(c)]),
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
      for (const column of columns) tr.append(cell(value(row, column), metricClass(column)));
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
    const fresh = table(message.columns || [], message.rows);
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

  // The board under every scheme the jury compares (the challenge's own first), and each
  // scheme's Kendall τ with the challenge's ranking (the full matrix is in the workbook).
  function schemesTable(ranking) {
    // One scheme only (a board ranked on a whole-set figure such as the AUC): nothing to compare.
    if (!ranking || !ranking.schemes || ranking.schemes.length < 2 || !ranking.teams.length) {
      return [];
    }
    const schemes = ranking.schemes;
    const current = schemes.find((s) => s.current) || schemes[0];
    const table = Podium.element("table", "schemes-table");
    table.append(Podium.element("caption", "",
                                "Rank under each ranking scheme (orange: not this challenge's rank)"));
    const head = Podium.element("tr");
    head.append(Podium.element("th", "team", "Team"));
    for (const s of schemes) {
      const th = Podium.element("th", s.current ? "scheme current" : "scheme");
      th.title = s.describe;
      const open = s.name.indexOf(" (");
      th.append(Podium.element("span", "scheme-name", open > 0 ? s.name.slice(0, open) : s.name),
                Podium.element("span", "scheme-metrics", open > 0 ? s.name.slice(open + 1) : ""));
      if (s.current) th.append(Podium.element("span", "scheme-note", "this challenge"));
      head.append(th);
    }
    table.append(Podium.element("thead"));
    table.tHead.append(head);
    const body = Podium.element("tbody");
    for (const team of ranking.teams) {
      const tr = Podium.element("tr");
      tr.dataset.team = team;
      const name = Podium.element("td", "team");
      name.append(swatch(team), Podium.element("span", "team-name", team));
      tr.append(name);
      for (const s of schemes) {
        const rank = s.ranks[team];
        const moved = rank !== undefined && rank !== current.ranks[team];
        tr.append(cell(rank === undefined ? "–" : String(rank), moved ? "rank moved" : "rank"));
      }
      body.append(tr);
    }
    table.append(body);
    const taus = {};
    for (const t of ranking.taus || []) {
      if (t.a === current.name) taus[t.b] = t.tau;
      if (t.b === current.name) taus[t.a] = t.tau;
    }
    if (Object.keys(taus).length) {
      const foot = Podium.element("tr", "tau");
      foot.append(Podium.element("th", "team", "Kendall τ with this challenge's ranking"));
      for (const s of schemes) {
        const tau = s.current ? 1 : taus[s.name];
        foot.append(cell(tau === undefined || tau === null ? "–" : tau.toFixed(2), "rank"));
      }
      table.append(Podium.element("tfoot"));
      table.tFoot.append(foot);
    }
    return [table];
  }

  // Plots drawn by the server (every team name escaped there), and the rank stability.
  function showAnalysis(box, data) {
    setColours(data.colours);
    box.querySelector(".stability").replaceChildren(...stabilityList(data.stability));
    const schemes = box.querySelector(".schemes");
    if (schemes) schemes.replaceChildren(...schemesTable(data.ranking));
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
