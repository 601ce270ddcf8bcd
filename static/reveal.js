// The winner reveal: one place per step, last place first. Each step is asked of the server
// (GET /api/v1/challenges/SLUG/reveal?step=N), which answers with the places revealed so far
// and their teams' plots and rank stability only: nothing of a place is on this page before
// the jury reveals it. Space, → and the Next button advance; ← and Back go back; nothing
// else does (a click on the page, on a link, on Log out).
"use strict";

const Reveal = (() => {
  const page = Podium.pageData();
  const board = document.getElementById("reveal-board");
  const analysis = document.getElementById("reveal-analysis");
  const hint = document.getElementById("reveal-hint");
  const errorLine = document.getElementById("reveal-error");
  const next = document.querySelector("[data-reveal=next]");
  const back = document.querySelector("[data-reveal=back]");
  let step = 0;       // places shown
  let wanted = 0;     // places asked for: presses made while an answer is on its way count
  let more = true;
  let asking = false;

  function show(data) {
    step = data.step;
    more = data.more;
    board.dataset.step = String(step);
    board.dataset.more = String(more);
    PodiumBoard.setColours(data.colours);
    // Best place first: each new place appears above the ones already announced.
    const places = [...data.places].reverse();
    const rows = places.flatMap((p) => p.rows);
    if (rows.length) {
      const table = PodiumBoard.table(data.columns, rows);
      const newest = data.places.length ? data.places[data.places.length - 1].rank : null;
      for (const tr of table.tBodies[0].rows) {
        if (Number(tr.dataset.rank) === newest) tr.classList.add("just-revealed");
      }
      board.replaceChildren(Podium.element("h2", "reveal-place",
                                           `Place ${newest}`), table);
    } else {
      board.replaceChildren();
    }
    PodiumBoard.showAnalysis(analysis, data);
    hint.hidden = step > 0;
    next.disabled = !more;
    next.textContent = more ? "Next place →" : "All places revealed";
    back.disabled = step === 0;
    errorLine.hidden = true;
    history.replaceState(null, "", `#step=${step}`);
  }

  function go(target) {
    if (target < 0 || (target > wanted && target > step && !more)) return;
    wanted = target;
    fetchWanted();
  }

  async function fetchWanted() {
    if (asking) return;  // the answer on its way asks again if more presses came meanwhile
    asking = true;
    try {
      while (wanted !== step) {
        const data = await Podium.api("GET",
                                      `/api/v1/challenges/${page.slug}/reveal?step=${wanted}`);
        show(data);
        if (!data.more && wanted > data.step) wanted = data.step;  // nothing left to reveal
      }
    } catch (error) {
      wanted = step;
      errorLine.textContent = `${error.message} — press again to retry.`;
      errorLine.hidden = false;
    } finally {
      asking = false;
    }
  }

  function start() {
    document.addEventListener("keydown", (e) => {
      if (e.altKey || e.ctrlKey || e.metaKey) return;
      if (e.key === " " || e.key === "ArrowRight") {
        e.preventDefault();  // and no click on a focused button: one step per press
        go(wanted + 1);
      } else if (e.key === "ArrowLeft") {
        e.preventDefault();
        go(wanted - 1);
      }
    });
    next.addEventListener("click", () => { next.blur(); go(wanted + 1); });
    back.addEventListener("click", () => { back.blur(); go(wanted - 1); });
    // A reload keeps the place the jury had reached (and reveals no more).
    const kept = /step=(\d+)/.exec(location.hash);
    if (kept && Number(kept[1]) > 0) go(Number(kept[1]));
  }

  start();
  return { go, get step() { return step; } };
})();
