// The organizer console: a button is enabled only when the challenge's state allows its
// action (the server's own rules, sent as each challenge's `actions`); each action is
// confirmed and logged; Close is set apart and names the teams still on extra time, offering
// to keep them. Errors stay on their challenge's card until the next action or state change.
"use strict";

const Organizer = (() => {
  // Who is at this console: asked at login, kept by the server with the session.
  const operatorForm = document.getElementById("operator-form");
  operatorForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = operatorForm.querySelector("[data-operator-error]");
    try {
      const answer = await Podium.api("POST", "/api/v1/operator",
                                      { name: operatorForm.elements.name.value });
      document.querySelector("[data-operator]").textContent = answer.operator;
      operatorForm.hidden = true;
      error.hidden = true;
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    }
  });
  document.querySelector("[data-change-operator]").addEventListener("click", () => {
    operatorForm.hidden = false;
    operatorForm.elements.name.focus();
  });
  const dialog = document.getElementById("action-dialog");
  let challenges = {};
  const states = {};

  function card(slug) {
    return document.querySelector(`.console-card[data-slug="${slug}"]`);
  }

  function showError(slug, text) {
    const box = document.querySelector(`[data-error-of="${slug}"]`);
    if (!box) return;
    box.querySelector(".error-text").textContent = text || "";
    box.hidden = !text;
  }

  function minutes(seconds) {
    return `${Math.round(seconds / 6) / 10} min`;
  }

  // The teams whose own extra time still runs.
  function extended(c) {
    return (c.extensions || []).filter((e) => e.state !== "closed");
  }

  function drawButtons(c) {
    const el = card(c.slug);
    if (!el) return;
    const allowed = new Set(c.actions || []);
    // Past the deadline, before the server has recorded the closing: nothing to do.
    const open = !(c.state === "running" && Podium.remaining(c) <= 0 && !extended(c).length);
    for (const button of el.querySelectorAll("button[data-action]")) {
      const action = button.dataset.action === "extend-team" ? "extend" : button.dataset.action;
      button.disabled = !open || !allowed.has(action);
    }
    const select = el.querySelector("select");
    if (select) select.disabled = !open || !allowed.has("extend");
  }

  function drawExtensions(c) {
    const list = document.querySelector(`[data-extensions-of="${c.slug}"]`);
    if (!list) return;
    list.replaceChildren(...(c.extensions || []).map((e) => {
      const item = Podium.element("li");
      item.dataset.team = e.team;
      item.textContent = `${e.team}: +${minutes(e.extension_s)}, ` +
        (e.state === "closed" ? "time is up"
          : e.deadline ? `until ${Podium.formatClock(e.deadline)}` : "paused");
      return item;
    }));
  }

  function update(list) {
    challenges = Object.fromEntries(list.map((c) => [c.slug, c]));
    for (const c of list) {
      // A state change makes an earlier refusal stale.
      if (states[c.slug] !== undefined && states[c.slug] !== c.state) showError(c.slug, "");
      states[c.slug] = c.state;
      drawButtons(c);
      drawExtensions(c);
    }
  }

  // A confirmation with any number of choices; resolves with the chosen value ("" if none).
  function ask(text, choices, { input = false } = {}) {
    dialog.querySelector(".confirm-text").textContent = text;
    dialog.querySelector(".confirm-input").hidden = !input;
    const buttons = dialog.querySelector(".confirm-buttons");
    buttons.replaceChildren(...[...choices, { value: "", label: "Cancel", className: "quiet" }]
      .map((choice) => {
        const button = Podium.element("button", choice.className || "", choice.label);
        button.value = choice.value;
        button.dataset.choice = choice.value || "cancel";
        return button;
      }));
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
    });
  }

  async function refreshLog() {
    const entries = await Podium.api("GET", "/api/v1/countdown-log");
    const body = document.getElementById("log");
    body.replaceChildren(...entries.map((e) => {
      const row = document.createElement("tr");
      const extra = e.seconds ? ` ${e.seconds >= 0 ? "+" : ""}${minutes(e.seconds)}` : "";
      for (const text of [Podium.formatTime(e.at), e.challenge, e.action + extra, e.team || "",
                          e.actor, e.state_after, Podium.formatTime(e.deadline_after)]) {
        row.append(Podium.element("td", null, text));
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

  async function refreshStatus() {
    const status = await Podium.api("GET", "/api/v1/status");
    const queue = document.querySelector("[data-status=queue]");
    const { queued, scoring } = status.queue;
    queue.textContent = `Scoring queue: ${queued} waiting, ${scoring} being scored`;
    queue.dataset.queued = String(queued);
    queue.classList.toggle("busy", queued > 10);
    const disk = document.querySelector("[data-storage]");
    if (disk && status.disk) {
      const d = status.disk;
      disk.textContent = `Disk: ${d.free} free of ${d.total}` +
        (d.low ? ` — uploads refused (507 storage_full) below ${d.reserve}` : "");
      disk.classList.toggle("low", d.low);
    }
  }

  // What to send for a button, after asking; null when the organizer cancels.
  async function plan(button, c) {
    const title = c.title;
    const action = button.dataset.action;
    if (action === "extend" || action === "extend-team") {
      let seconds = Number(button.dataset.seconds);
      const team = action === "extend-team" ? card(c.slug).querySelector("select").value : null;
      const who = team ? team : "every team";
      if (!seconds) {
        const answer = await ask(`Extra time for ${who} on “${title}”:`,
                                 [{ value: "yes", label: "Give the extra time", className: "primary" }],
                                 { input: true });
        if (answer !== "yes") return null;
        const raw = dialog.querySelector("input[name=minutes]").value.replace(",", ".");
        seconds = Math.round(Number(raw) * 60);
        if (!(seconds > 0)) throw new Error("Give a positive number of minutes.");
      } else if (await ask(`Give ${who} ${minutes(seconds)} more on “${title}”?`,
                           [{ value: "yes", label: `+${minutes(seconds)}`, className: "primary" }]) !== "yes") {
        return null;
      }
      return { action: "extend", body: { seconds, ...(team ? { team } : {}) } };
    }
    if (action === "close") {
      const still = extended(c);
      if (still.length) {
        const names = still.map((e) => e.deadline
          ? `${e.team} (until ${Podium.formatClock(e.deadline)})` : `${e.team} (paused)`);
        const teams = still.map((e) => e.team).join(", ");
        const answer = await ask(
          `Close “${title}” now? ${still.length === 1 ? "This team is" : "These teams are"} ` +
          `still on extra time: ${names.join(", ")}. Closing for every team ends theirs too.`,
          [{ value: "keep", label: `Close, keep ${teams}'s extra time`, className: "primary" },
           { value: "all", label: "Close for every team", className: "danger" }]);
        if (!answer) return null;
        return { action: "close", body: answer === "keep" ? { keep_extensions: true } : {} };
      }
      const answer = await ask(`Close “${title}” now? Uploads stop for every team.`,
                               [{ value: "all", label: "Close", className: "danger" }]);
      return answer ? { action: "close", body: {} } : null;
    }
    const labels = { start: "Start", pause: "Pause", resume: "Resume" };
    const answer = await ask(`${labels[action]} “${title}”?`,
                             [{ value: "yes", label: labels[action], className: "primary" }]);
    return answer === "yes" ? { action, body: {} } : null;
  }

  async function onClick(event) {
    const dismiss = event.target.closest("button[data-dismiss]");
    if (dismiss) {
      showError(dismiss.closest("[data-slug]").dataset.slug, "");
      return;
    }
    const button = event.target.closest(".console-card button[data-action]");
    if (!button || button.disabled) return;
    const slug = button.closest("[data-slug]").dataset.slug;
    const c = challenges[slug];
    if (!c) return;
    showError(slug, "");
    try {
      const step = await plan(button, c);
      if (!step) return;
      const after = await Podium.api("POST", `/api/v1/challenges/${slug}/${step.action}`, step.body);
      update(Object.values({ ...challenges, [slug]: { ...c, ...after } }));
    } catch (error) {
      showError(slug, error.message);
    }
    refreshLog().catch(() => {});
  }

  function start() {
    document.addEventListener("click", onClick);
    PodiumClock.onRender((all) => { for (const c of Object.values(challenges)) drawButtons(c); });
    Podium.syncClock().catch(() => {});
    // Downloads, uploads and the queue are not announced on the clock: look every few seconds.
    const poll = () => {
      refreshCounts().catch(() => {});
      refreshStatus().catch(() => {});
    };
    poll();
    setInterval(poll, 5000);
    refreshLog().catch(() => {});
    Podium.live(["clock"], (m) => {
      if (m.type !== "clock") return;
      PodiumClock.update(m.challenges);
      update(m.challenges);
      refreshLog().catch(() => {});
    });
  }

  return { start, refreshLog, update };
})();

{
  const page = Podium.pageData();
  PodiumClock.update(page.challenges || []);
  Organizer.update(page.challenges || []);
  Organizer.start();
}
