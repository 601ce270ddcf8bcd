// Live leaderboards: every element [data-board="SLUG"] shows that challenge's board, redrawn
// on each message; a row whose rank changes slides to its new place.
"use strict";

const PodiumBoard = (() => {
  const METRICS = {
    "segmentation-surface": [["dice", "Dice", 4], ["surface_mse", "Surface MSE (mm²)", 0], ["score", "Σ ranks", 0]],
    "binary-probability": [["auc", "AUC", 4]],
    "regression": [["mse", "MSE", 3]],
  };
  const seqs = {};

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
      for (const title of ["#", "Team", ...columns.map((c) => c[1]), "Uploads", "Counted at"]) {
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

  // Connects the page: clock for every [data-clock], boards for every [data-board].
  function start() {
    const slugs = [...document.querySelectorAll("[data-board]")].map((el) => el.dataset.board);
    const channels = ["clock", ...slugs.map((s) => `leaderboard:${s}`)];
    Podium.syncClock().catch(() => {});
    Podium.live(channels, (m) => {
      if (m.type === "clock") PodiumClock.update(m.challenges);
      else if (m.type === "leaderboard") render(m);
      else if (m.type === "error" && m.channel) hidden(m.channel, "This board is not shown to you.");
    });
  }

  return { render, start, seqs };
})();
