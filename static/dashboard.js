// The organizers' inclusion dashboard: Tables 2 and 3, progress to target with the margin, the
// best center of each question, the violations to accept or reject, the newest exams. Live:
// every exam change (channel "exams") redraws the newest exams and reloads the tables.
"use strict";

(() => {
  const el = Podium.element;
  const data = Podium.pageData();
  let exams = new Map(data.exams.map((e) => [e.id, e]));
  const NEWEST = 20;

  function cell(text, className) { return el("td", className || "", String(text)); }

  function renderQuestions(table3) {
    const box = document.querySelector("[data-questions]");
    box.replaceChildren(...table3.map((q) => {
      const card = el("article", "question-card");
      card.dataset.question = q.challenge;
      card.append(el("h3", "", q.title));
      const figures = el("p", "figures");
      figures.append(el("strong", "big", String(q.kept)),
                     ` kept of ${q.wanted} wanted (target ${q.target} + margin) · ${q.received} received`);
      card.append(figures, Inclusion.bar(q.kept, q.target, q.wanted));
      const pct = el("p", "hint",
        `${q.wanted_percent} % of the target with its margin` +
        (q.target_percent !== null ? ` · ${q.target_percent} % of the target` : ""));
      const best = el("p", "best");
      best.dataset.bestOf = q.challenge;
      best.textContent = q.best_center
        ? `Best inclusion center: ${q.best_center} (${q.best_center_kept} kept)`
        : "Best inclusion center: none yet";
      card.append(pct, best);
      return card;
    }));
  }

  function renderTable3(table3, total) {
    const body = document.querySelector("[data-table3] tbody");
    const row = (name, t) => {
      const tr = el("tr");
      const kept = t.kept_percent === null ? String(t.kept) : `${t.kept} (${t.kept_percent} %)`;
      tr.append(el("th", "", name), cell(t.received, "num"), cell(kept, "num"),
                cell(t.excluded, "num"), cell(t.pending, "num"), cell(Inclusion.reasons(t)),
                cell(Inclusion.classes(t)));
      return tr;
    };
    const rows = table3.map((q) => { const r = row(q.title, q); r.dataset.row = q.challenge; return r; });
    const totalRow = row("Total", total);
    totalRow.className = "total";
    body.replaceChildren(...rows, totalRow);
  }

  function renderTable2(table2, table3) {
    const box = document.querySelector("[data-table2]");
    box.replaceChildren(...table3.map((q) => {
      const section = el("article", "center-table");
      section.append(el("h3", "", `${q.title} · ${q.received} received`));
      const table = el("table");
      const head = el("tr");
      for (const h of ["Center", "Received", "Kept", "Excluded", "In progress", "Excluded by reason", "Kept by class"]) {
        head.append(el("th", ["Received", "Kept", "Excluded", "In progress"].includes(h) ? "num" : "", h));
      }
      const thead = el("thead"); thead.append(head);
      const tbody = el("tbody");
      for (const c of table2.filter((r) => r.challenge === q.challenge)) {
        const tr = el("tr");
        tr.dataset.center = c.center;
        tr.dataset.question = c.challenge;
        const name = el("th");
        const link = el("a", "", c.center);
        link.href = `/center/digest?center=${encodeURIComponent(c.center)}`;
        name.append(link);
        if (q.best_center === c.center) name.append(el("span", "medal", " best"));
        tr.append(name, cell(c.received, "num"), cell(c.kept, "num"), cell(c.excluded, "num"),
                  cell(c.pending, "num"), cell(Inclusion.reasons(c)), cell(Inclusion.classes(c)));
        tbody.append(tr);
      }
      table.append(thead, tbody);
      section.append(table);
      return section;
    }));
  }

  function renderViolations(violations) {
    const body = document.querySelector("[data-violations] tbody");
    document.querySelector("[data-no-violations]").hidden = violations.length > 0;
    document.querySelector("[data-violations]").hidden = violations.length === 0;
    document.querySelector("[data-violation-count]").textContent =
      violations.length ? `(${violations.length})` : "";
    body.replaceChildren(...violations.map((v) => {
      const tr = el("tr");
      tr.dataset.violation = v.id;
      const decide = el("td", "decide");
      const form = el("form", "decision");
      const input = el("input");
      input.name = "reason";
      input.placeholder = "reason (the center reads it)";
      input.maxLength = 1000;
      const accept = el("button", "", "Accept");
      accept.type = "submit";
      accept.value = "accepted";
      accept.dataset.decide = "accepted";
      const reject = el("button", "danger", "Reject");
      reject.type = "submit";
      reject.value = "rejected";
      reject.dataset.decide = "rejected";
      const error = el("span", "error");
      error.hidden = true;
      form.append(input, accept, reject, error);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const state = event.submitter ? event.submitter.value : "accepted";
        const reason = input.value.trim();
        if (!reason) {
          error.textContent = "give a reason: the center reads it";
          error.hidden = false;
          input.focus();
          return;
        }
        for (const b of form.querySelectorAll("button")) b.disabled = true;
        try {
          await Podium.api("POST", `/api/v1/violations/${v.id}/decision`, { state, reason });
          tr.dataset.decided = state;
          reload();
        } catch (failure) {
          error.textContent = failure.message;
          error.hidden = false;
          for (const b of form.querySelectorAll("button")) b.disabled = false;
        }
      });
      decide.append(form);
      const what = el("td");
      what.append(el("strong", "", v.code), el("br"), el("span", "", v.message));
      tr.append(cell(v.label), cell(v.center), cell(v.challenge), what,
                cell(Inclusion.STATES[v.state] || v.state), decide);
      return tr;
    }));
  }

  function renderNewest() {
    const list = [...exams.values()].sort((a, b) =>
      (b.received_at.localeCompare(a.received_at)) || (b.id - a.id)).slice(0, NEWEST);
    const body = document.querySelector("[data-newest] tbody");
    body.replaceChildren(...list.map((e) => {
      const tr = el("tr");
      tr.dataset.exam = e.id;
      tr.dataset.stage = e.stage;
      const withdraw = el("td");
      if (e.stage !== "excluded") {
        const button = el("button", "quiet", "Withdraw…");
        button.addEventListener("click", async () => {
          const reason = window.prompt(`Withdraw ${e.label} from the dataset? The reason, for the center:`);
          if (!reason || !reason.trim()) return;
          try {
            await Podium.api("POST", `/api/v1/exams/${e.id}/withdraw`, { reason });
          } catch (failure) { window.alert(failure.message); }
        });
        withdraw.append(button);
      }
      tr.append(cell(Inclusion.when(e.received_at)), cell(e.label), cell(e.center),
                cell(e.challenge), cell(Inclusion.standing(e), `standing standing-${e.stage}`),
                withdraw);
      return tr;
    }));
  }

  function renderAll(tables, violations) {
    renderQuestions(tables.table3);
    renderTable3(tables.table3, tables.total);
    renderTable2(tables.table2, tables.table3);
    renderViolations(violations);
  }

  let pending = null;
  function reload() {
    if (pending) return;
    pending = setTimeout(async () => {
      pending = null;
      try {
        const [tables, violations] = await Promise.all([
          Podium.api("GET", "/api/v1/inclusion/tables"),
          Podium.api("GET", "/api/v1/violations")]);
        renderAll(tables, violations.violations);
      } catch (failure) { /* the next change tries again */ }
    }, 250);
  }

  renderAll(data, data.violations);
  renderNewest();
  Podium.live(["exams"], (message) => {
    if (message.type === "exams") {
      exams = new Map(message.exams.map((e) => [e.id, e]));
      renderNewest();
    } else if (message.type === "exam") {
      exams.set(message.exam.id, message.exam);
      renderNewest();
      reload();
    }
  });
})();
