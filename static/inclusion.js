// What the centers' portal and the organizers' dashboard share: an exam drawn as a card (where
// it stands, its findings with their LORIS states, its timeline), a progress bar, the reasons.
"use strict";

const Inclusion = (() => {
  const el = Podium.element;
  const STATES = {
    open: "open — not yet seen by the center",
    notified: "the center was told",
    resent: "resent: replaced by a new exam",
    accepted: "accepted by the organizers",
    rejected: "rejected by the organizers",
  };
  const REASONS = {
    deidentification: "could not be de-identified",
    criteria: "fails the criteria",
    quality: "quality (graded out)",
    resent: "replaced by a resend",
    withdrawn: "withdrawn",
  };

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const day = new Intl.DateTimeFormat("en-GB", { timeZone: Podium.zone, day: "numeric",
                                                   month: "short" }).format(d);
    return `${day} ${Podium.formatTime(iso, { seconds: false })}`;
  }

  function standing(exam) {
    if (exam.stage === "kept") return `kept, class ${exam.grade}`;
    if (exam.stage === "excluded") return `excluded: ${REASONS[exam.exclusion] || exam.exclusion}`;
    if (exam.stage === "checked") return "a criterion fails: to act on";
    if (exam.stage === "review") return "with the experts";
    if (exam.stage === "deidentified") return "being checked";
    return "being de-identified";
  }

  function steps(exam) {
    const list = el("ol", "steps");
    for (const s of exam.steps) {
      const item = el("li", `step step-${s.state}`, s.label);
      item.dataset.step = s.step;
      item.dataset.state = s.state;
      list.append(item);
    }
    return list;
  }

  function findings(exam) {
    const list = el("ul", "findings");
    for (const f of exam.findings) {
      const item = el("li", `finding ${f.severity}${f.blocking ? " blocking" : ""}`);
      item.dataset.finding = f.id;
      item.dataset.state = f.state;
      item.append(el("span", "severity", f.severity === "warning" ? "warning" : "violation"),
                  el("span", "message", f.message));
      if (f.severity === "violation") {
        item.append(el("span", "loris", STATES[f.state] || f.state));
        if (f.reason) item.append(el("span", "reason", `“${f.reason}”`));
      }
      list.append(item);
    }
    return list;
  }

  function timeline(exam) {
    const list = el("ol", "timeline");
    for (const t of exam.timeline) {
      const item = el("li", `event event-${t.kind}`);
      item.append(el("time", "", when(t.at)), el("span", "", t.message));
      list.append(item);
    }
    return list;
  }

  function card(exam) {
    const article = el("article", `exam-card stage-${exam.stage}`);
    article.dataset.exam = exam.id;
    article.dataset.stage = exam.stage;
    const head = el("header");
    head.append(el("h3", "", exam.label), el("span", "question", exam.challenge),
                el("span", "received", `received ${when(exam.received_at)} · ${exam.channel}`),
                el("span", `standing standing-${exam.stage}`, standing(exam)));
    article.append(head, steps(exam));
    if (exam.outcome) article.append(el("p", "outcome", exam.outcome));
    if (exam.findings.length) article.append(findings(exam));
    const details = el("details", "history");
    details.append(el("summary", "", `Timeline (${exam.timeline.length})`), timeline(exam));
    article.append(details);
    return article;
  }

  // A bar of kept exams towards the target with its margin; the target itself is marked.
  function bar(kept, target, wanted) {
    const outer = el("div", "bar-track");
    outer.setAttribute("role", "progressbar");
    outer.setAttribute("aria-valuemin", "0");
    outer.setAttribute("aria-valuemax", String(wanted));
    outer.setAttribute("aria-valuenow", String(kept));
    const fill = el("div", "bar-fill");
    const share = wanted ? Math.min(1, kept / wanted) : 0;
    fill.style.setProperty("width", `${(share * 100).toFixed(1)}%`);
    outer.append(fill);
    if (wanted && target < wanted) {
      const mark = el("div", "bar-target");
      mark.style.setProperty("left", `${(100 * target / wanted).toFixed(1)}%`);
      mark.title = `target ${target}`;
      outer.append(mark);
    }
    return outer;
  }

  function reasons(tally) {
    const parts = [];
    for (const [reason, n] of Object.entries(tally.excluded_by_reason)) {
      if (n) parts.push(`${REASONS[reason] || reason} ${n}`);
    }
    const codes = Object.entries(tally.excluded_by_code).map(([c, n]) => `${c} ${n}`);
    return parts.join(" · ") + (codes.length ? ` (${codes.join(", ")})` : "");
  }

  function classes(tally) {
    return Object.entries(tally.kept_by_class).map(([g, n]) => `${g} ${n}`).join(" · ");
  }

  return { card, bar, reasons, classes, standing, when, STATES, REASONS };
})();
