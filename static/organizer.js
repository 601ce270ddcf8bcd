// The organizer console: buttons for the countdown, each confirmed and logged; the log live.
"use strict";

const Organizer = (() => {
  const actor = document.getElementById("actor");
  actor.value = localStorage.getItem("podium-actor") || "";
  actor.addEventListener("change", () => localStorage.setItem("podium-actor", actor.value));
  const errorBox = document.getElementById("action-error");

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  async function refreshLog() {
    const entries = await Podium.api("GET", "/api/v1/countdown-log");
    const body = document.getElementById("log");
    body.replaceChildren(...entries.map((e) => {
      const row = document.createElement("tr");
      const extra = e.seconds ? ` ${e.seconds >= 0 ? "+" : ""}${Math.round(e.seconds / 60 * 10) / 10} min` : "";
      for (const text of [Podium.formatTime(e.at), e.challenge, e.action + extra, e.team || "",
                          e.actor, e.state_after, Podium.formatTime(e.deadline_after)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    }));
  }

  async function refreshCounts() {
    const counts = await Podium.api("GET", "/api/v1/counts");
    for (const [slug, values] of Object.entries(counts)) {
      for (const [name, value] of Object.entries(values)) {
        const cell = document.querySelector(`[data-slug="${slug}"] [data-count="${name}"]`);
        if (cell) cell.textContent = String(value);
      }
    }
  }

  function renderExtensions(challenges) {
    for (const c of challenges) {
      const list = document.querySelector(`[data-extensions-of="${c.slug}"]`);
      if (!list) continue;
      list.replaceChildren(...(c.extensions || []).map((e) => {
        const item = document.createElement("li");
        item.textContent = `${e.team}: +${Math.round(e.extension_s / 60 * 10) / 10} min, ` +
          (e.state === "closed" ? "time is up" : `until ${Podium.formatTime(e.deadline) || "paused"}`);
        return item;
      }));
    }
  }

  async function onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const card = button.closest("[data-slug]");
    const slug = card.dataset.slug;
    const title = card.querySelector("h2").textContent;
    let action = button.dataset.action;
    const body = {};
    if (actor.value.trim()) body.by = actor.value.trim();
    let question = `${action[0].toUpperCase()}${action.slice(1)} “${title}”?`;
    if (action === "extend" || action === "extend-team") {
      let seconds = Number(button.dataset.seconds);
      if (!seconds) {
        const minutes = prompt(`Extra minutes for “${title}”:`, "5");
        if (minutes === null) return;
        seconds = Math.round(Number(minutes.replace(",", ".")) * 60);
        if (!(seconds > 0)) { showError("Give a positive number of minutes."); return; }
      }
      body.seconds = seconds;
      if (action === "extend-team") {
        body.team = card.querySelector("select").value;
        action = "extend";
        question = `Give ${body.team} ${seconds / 60} more minutes on “${title}”?`;
      } else {
        question = `Give every team ${seconds / 60} more minutes on “${title}”?`;
      }
    }
    if (!confirm(question)) return;
    try {
      await Podium.api("POST", `/api/v1/challenges/${slug}/${action}`, body);
      showError("");
    } catch (error) {
      showError(error.message);
    }
    refreshLog().catch(() => {});
  }

  function start() {
    document.addEventListener("click", onClick);
    Podium.syncClock().catch(() => {});
    // Downloads and uploads are not announced on the clock: look every few seconds.
    setInterval(() => refreshCounts().catch(() => {}), 5000);
    Podium.live(["clock"], (m) => {
      if (m.type !== "clock") return;
      PodiumClock.update(m.challenges);
      renderExtensions(m.challenges);
      refreshLog().catch(() => {});
    });
  }

  return { start, refreshLog };
})();

{
  PodiumClock.update(Podium.pageData().challenges);
  Organizer.start();
}
