// The center's page: its exams, live (channel "exams"), and its progress per question.
"use strict";

(() => {
  const el = Podium.element;
  const data = Podium.pageData();
  let exams = new Map(data.exams.map((e) => [e.id, e]));
  let progress = data.progress;

  function renderProgress() {
    const box = document.querySelector("[data-progress]");
    box.replaceChildren();
    for (const p of progress) {
      const card = el("article", "progress-card");
      card.dataset.progressOf = p.challenge;
      card.append(el("h2", "", p.title));
      const counts = el("p", "mine");
      counts.append(el("strong", "", `${p.received} sent`),
                    ` · ${p.kept} kept · ${p.excluded} excluded · ${p.pending} in progress`);
      card.append(counts);
      if (p.question) {
        const q = p.question;
        card.append(Inclusion.bar(q.kept, q.target, q.wanted),
                    el("p", "hint", `All centers: ${q.kept} kept of the ${q.wanted} wanted (target ${q.target} and its margin)`));
      }
      box.append(card);
    }
  }

  function renderExams() {
    const list = [...exams.values()].sort((a, b) =>
      (b.received_at.localeCompare(a.received_at)) || (b.id - a.id));
    const box = document.querySelector("[data-exams]");
    box.replaceChildren(...list.map(Inclusion.card));
    document.querySelector("[data-no-exams]").hidden = list.length > 0;
    document.querySelector("[data-exam-count]").textContent =
      list.length ? `(${list.length}, newest first)` : "";
    const waiting = list.filter((e) => e.stage === "checked");
    const act = document.querySelector("[data-to-act]");
    act.hidden = waiting.length === 0;
    const items = waiting.map((e) => {
      const item = el("li");
      const link = el("a", "", e.label);
      link.href = `#exam-${e.id}`;
      item.append(link, ` (${e.challenge}): `,
                  e.findings.filter((f) => f.blocking).map((f) => f.message).join("; "));
      return item;
    });
    document.querySelector("[data-to-act-list]").replaceChildren(...items);
    for (const card of box.children) card.id = `exam-${card.dataset.exam}`;
    // The upload panel (center_upload.js) shows each received zip's standing from the cards.
    document.dispatchEvent(new CustomEvent("podium:exams", { detail: exams }));
  }

  let refreshing = null;
  function refreshProgress() {
    if (refreshing) return;
    refreshing = setTimeout(async () => {
      refreshing = null;
      try {
        const fresh = await Podium.api("GET", "/api/v1/center/exams");
        progress = fresh.progress;
        renderProgress();
      } catch (error) { /* the next change tries again */ }
    }, 300);
  }

  renderProgress();
  renderExams();
  Podium.live(["exams"], (message) => {
    if (message.type === "exams") {
      exams = new Map(message.exams.map((e) => [e.id, e]));
      renderExams();
    } else if (message.type === "exam") {
      exams.set(message.exam.id, message.exam);
      renderExams();
      refreshProgress();
    }
  });
})();
