// Live leaderboards: every element [data-board="SLUG"] shows that challenge's board, redrawn
// on each message; a row whose rank changes slides to its new place.
"use strict";

const PodiumBoard = (() => {
  const METRICS = {
    "segmentation-surface": [["dice", "Dice", 4], ["surface_mse", "MSE mm²", 0], ["score", "Score", 0]],
    "binary-probability": [["auc", "AUC", 4]],
    "regression": [["mse", "MSE", 3]],
  };
  const seqs = {};
  const latest = {};
  let options = {};
  let revealed = 0;       // reveal mode: how many places are shown, from the last

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function value(row, key, digits) {
    const v = key === "score" ? row.score : row.metrics && row.metrics[key];
    return v === null || v === undefined ? "" : Number(v).toFixed(digits);
  }

  function render(message) {
    const container = document.querySelector(`[data-board="${message.challenge}"]`);
    if (!container) return;
    seqs[message.challenge] = message.seq;
    const columns = METRICS[message.kind] || [];
    let table = container.querySelector("table");
    if (!table) {
      table = document.createElement("table");
      table.className = "board";
      const head = table.createTHead().insertRow();
      for (const title of ["#", "Team", ...columns.map((c) => c[1]), "Sent", "At"]) {
        const th = document.createElement("th");
        th.textContent = title;
        head.append(th);
      }
      table.createTBody();
      container.append(table);
    }
    const body = table.tBodies[0];
    // FLIP: remember where each team's row was, redraw, then slide from there.
    const before = {};
    for (const tr of body.rows) before[tr.dataset.team] = tr.getBoundingClientRect().top;
    body.replaceChildren(...message.rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.team = row.team;
      tr.dataset.rank = row.rank === null ? "" : String(row.rank);
      if (!row.valid) tr.className = "no-valid";
      tr.append(cell(row.rank === null ? "—" : String(row.rank), "rank"), cell(row.team, "team"));
      for (const [key, , digits] of columns) tr.append(cell(value(row, key, digits), "metric"));
      tr.append(cell(String(row.submissions), "count"),
                cell(row.valid ? Podium.formatTime(row.received_at) : "", "time"));
      return tr;
    }));
    for (const tr of body.rows) {
      const old = before[tr.dataset.team];
      if (old === undefined) continue;
      const delta = old - tr.getBoundingClientRect().top;
      if (Math.abs(delta) < 1) continue;
      tr.classList.add("moved");
      tr.animate([{ transform: `translateY(${delta}px)` }, { transform: "translateY(0)" }],
                 { duration: 800, easing: "ease-in-out" });
    }
    latest[message.challenge] = message;
    if (options.reveal) applyReveal(message.challenge);
    if (options.analysis) scheduleAnalysis(message.challenge);
    const frozen = container.querySelector(".frozen-flag");
    if (frozen) frozen.hidden = !message.frozen;
    container.dataset.seq = String(message.seq);
  }

  function hidden(channel, text) {
    const slug = channel.split(":")[1];
    const container = document.querySelector(`[data-board="${slug}"]`);
    if (container) {
      const note = document.createElement("p");
      note.className = "hint";
      note.textContent = text;
      container.replaceChildren(note);
    }
  }

  // Reveal mode: the board is shown from the last place to the first, one place (a group of
  // tied teams) per key press, for the announcement.
  function places(message) {
    const ranks = [...new Set(message.rows.filter((r) => r.valid).map((r) => r.rank))];
    return ranks.sort((a, b) => b - a);
  }

  function applyReveal(slug) {
    const message = latest[slug];
    if (!message) return;
    const shown = new Set(places(message).slice(0, revealed));
    for (const tr of document.querySelectorAll(`[data-board="${slug}"] tbody tr`)) {
      tr.hidden = !shown.has(Number(tr.dataset.rank));
    }
  }

  function revealNext() {
    revealed += 1;
    for (const slug of Object.keys(latest)) applyReveal(slug);
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
    const data = await Podium.api("GET", `/api/v1/challenges/${slug}/analysis`);
    const stability = box.querySelector(".stability");
    const entries = Object.entries(data.stability || {});
    stability.textContent = entries.length
      ? "Holds its rank in 1,000 bootstrap resamples: " +
        entries.map(([team, share]) => `${team} ${Math.round(share * 100)}%`).join(" · ")
      : "";
    // The SVGs are drawn by the server with every team name escaped.
    box.querySelector(".plots").innerHTML = Object.values(data.plots || {}).join("");
    box.dataset.loaded = String(Object.keys(data.plots || {}).length);
  }

  // Connects the page: clock for every [data-clock], boards for every [data-board].
  function start(opts) {
    options = opts || {};
    if (options.reveal) {
      document.addEventListener("keydown", (e) => { if (e.key === " " || e.key === "ArrowRight") { e.preventDefault(); revealNext(); } });
      document.addEventListener("click", revealNext);
    }
    const slugs = [...document.querySelectorAll("[data-board]")].map((el) => el.dataset.board);
    const channels = ["clock", ...slugs.map((s) => `leaderboard:${s}`)];
    Podium.syncClock().catch(() => {});
    Podium.live(channels, (m) => {
      if (m.type === "clock") PodiumClock.update(m.challenges);
      else if (m.type === "leaderboard") render(m);
      else if (m.type === "error" && m.channel) hidden(m.channel, "This board is not shown to you.");
    });
  }

  return { render, start, seqs, revealNext };
})();

// The page's data is a JSON block (no inline script: the Content-Security-Policy forbids it).
{
  const page = Podium.pageData();
  PodiumClock.update(page.challenges);
  PodiumBoard.start({ reveal: page.reveal, analysis: page.analysis });
}
