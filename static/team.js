// The team page: upload with a progress bar, the receipt, then the state of the file as it
// changes (queued → scoring → scored or invalid, with warnings) — all without reloading.
// Beside it: which submission counts now and why, how many are left, the team's own deadline,
// and an Upload button that is only enabled while the window is open.
"use strict";

const Team = (() => {
  const page = Podium.pageData();
  const bySlug = {};
  const standings = { ...(page.standings || {}) };
  const feedback = page.feedback || {};
  const uploading = {};
  const localNames = {};  // submission id -> the file's name as picked on this computer
  const dialog = document.getElementById("confirm-dialog");

  // Messages and the upload's own answer can arrive in any order: never go back to an
  // earlier state (the receipt says "queued" even when the result came first).
  const ORDER = { queued: 0, scoring: 1, scored: 2, invalid: 2 };
  const STATE_TEXT = { queued: "waiting to be scored", scoring: "being scored…",
                       scored: "scored", invalid: "invalid" };

  function size(bytes) {
    // A number and its unit never part (no-break space).
    if (bytes < 1000) return `${bytes}\u00a0B`;
    if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)}\u00a0kB`;
    return `${(bytes / 1e6).toFixed(1)}\u00a0MB`;
  }

  function nameOf(s) {
    return localNames[s.id] || s.filename;
  }

  // Metrics rounded as the workbook shows them; `all`: every metric, else the ranked ones.
  const RANKED = ["dice", "surface_mse", "auc", "mse"];
  function metricText(key, v) {
    const digits = key.startsWith("dice") ? 4 : key.startsWith("auc") ? 3
      : key === "surface_mse" ? 0 : key.endsWith("_cm2") ? 1 : 2;
    return `${key} ${Number(v).toFixed(digits)}`;
  }

  function metricsText(s, all = false) {
    return Object.entries(s.metrics || {})
      .filter(([k]) => all || RANKED.includes(k))
      .map(([k, v]) => metricText(k, v))
      .join(" · ");
  }

  // One problem repeated over many exams is one line: its code, how many, the first message
  // and the exams' ids.
  function grouped(problems) {
    const groups = new Map();
    for (const p of problems || []) {
      const group = groups.get(p.code) || { code: p.code, messages: [], ids: [] };
      if (group.messages.length < 1) group.messages.push(p.message);
      group.count = (group.count || 0) + 1;
      if (p.id !== undefined && p.id !== null) group.ids.push(String(p.id));
      groups.set(p.code, group);
    }
    return [...groups.values()];
  }

  function problemList(problems, className) {
    const list = Podium.element("ul", className);
    for (const g of grouped(problems)) {
      const item = Podium.element("li");
      item.dataset.code = g.code;
      item.append(Podium.element("strong", "code", g.code));
      if (g.count > 1) item.append(Podium.element("span", "times", ` ×${g.count}`));
      item.append(document.createTextNode(": "), Podium.element("span", "message", g.messages[0]));
      if (g.ids.length > 1) {
        const shown = g.ids.slice(0, 8).join(", ") + (g.ids.length > 8 ? `, and ${g.ids.length - 8} more` : "");
        item.append(Podium.element("span", "ids", ` (exams ${shown})`));
      }
      list.append(item);
    }
    return list;
  }

  function resultText(s) {
    if (s.status === "scored") {
      const warnings = (s.warnings || []).length;
      const note = warnings ? ` · ${warnings} warning${warnings > 1 ? "s" : ""}` : "";
      return (s.metrics ? metricsText(s, true) : "valid") + note;
    }
    if (s.status === "invalid") {
      const n = grouped(s.errors).length;
      return `${n} problem${n > 1 ? "s" : ""}`;
    }
    return STATE_TEXT[s.status];
  }

  function latest(slug) {
    const list = Object.values(bySlug[slug] || {});
    return list.length ? list.reduce((a, b) => (a.id > b.id ? a : b)) : null;
  }

  function drawHistory(slug) {
    const body = document.querySelector(`[data-history-of="${slug}"]`);
    if (!body) return;
    const counted = standings[slug] && standings[slug].counted_submission;
    const list = Object.values(bySlug[slug] || {}).sort((a, b) => b.id - a.id);
    body.replaceChildren(...list.flatMap((s) => {
      const tr = document.createElement("tr");
      tr.dataset.id = String(s.id);
      tr.dataset.status = s.status;
      if (s.id === counted) tr.classList.add("counted");
      const status = s.id === counted ? `${s.status} · counts` : s.status;
      for (const [text, cls] of [[`#${s.id}`], [Podium.formatTime(s.received_at)],
                                 [nameOf(s), "file"], [size(s.size), "size"],
                                 [status, `status status-${s.status}`], [resultText(s), "result"]]) {
        tr.append(Podium.element("td", cls, text));
      }
      // Warnings are truth-free notices about how the file was read: under its row, in the
      // notice style, never as errors.
      if (!(s.warnings || []).length) return [tr];
      const notes = Podium.element("tr", "warnings-row");
      notes.dataset.warningsOf = String(s.id);
      const cell = Podium.element("td");
      cell.colSpan = 6;
      cell.append(problemList(s.warnings, "warnings"));
      notes.append(cell);
      return [tr, notes];
    }));
  }

  // The status line and the receipt follow the newest submission of the challenge.
  function drawLatest(slug) {
    if (uploading[slug]) return;
    const s = latest(slug);
    const line = document.querySelector(`[data-status-of="${slug}"]`);
    const receipt = document.querySelector(`[data-receipt-of="${slug}"]`);
    const box = document.querySelector(`[data-problems-of="${slug}"]`);
    if (!s) return;
    const counted = standings[slug] && standings[slug].counted_submission;
    let text = `#${s.id} ${nameOf(s)}: ${STATE_TEXT[s.status]}`;
    if (s.status === "scored") {
      text += s.metrics ? ` — ${metricsText(s)}` : " — valid";
      if (s.id === counted) text += "; it counts now";
      const warnings = (s.warnings || []).length;
      if (warnings) text += ` (${warnings} warning${warnings > 1 ? "s" : ""}, see below)`;
    } else if (s.status === "invalid") {
      const n = grouped(s.errors).length;
      text += ` — ${n} problem${n > 1 ? "s" : ""}, listed below; it does not count`;
    }
    setLine(line, text, s.status);
    receipt.hidden = false;
    receipt.dataset.id = String(s.id);
    receipt.dataset.status = s.status;
    const sha = Podium.element("code", "sha", s.sha256);
    receipt.replaceChildren(
      Podium.element("strong", null, `Receipt · submission #${s.id}`),
      document.createTextNode(` · received ${Podium.formatClock(s.received_at)} · ${nameOf(s)} · ` +
                              `${size(s.size)} · SHA-256 `), sha);
    const parts = [];
    if ((s.errors || []).length) parts.push(problemList(s.errors, "problems"));
    if ((s.warnings || []).length) parts.push(problemList(s.warnings, "warnings"));
    box.replaceChildren(...parts);
    box.hidden = !parts.length;
  }

  function setLine(line, text, state) {
    line.hidden = false;
    line.textContent = text;
    line.dataset.state = state;
    line.className = `status-line state-${state}`;
  }

  async function refreshStanding(slug) {
    try {
      standings[slug] = await Podium.api("GET", `/api/v1/challenges/${slug}/standing`);
    } catch (error) {
      return;
    }
    drawStanding(slug);
    drawHistory(slug);
    drawLatest(slug);
  }

  function drawStanding(slug) {
    const s = standings[slug];
    const box = document.querySelector(`[data-standing-of="${slug}"]`);
    if (!s || !box) return;
    const counted = box.querySelector("[data-standing=counted]");
    counted.textContent = s.counted_submission
      ? `#${s.counted_submission} — ${s.reason}` : s.reason;
    const left = box.querySelector("[data-standing=left]");
    const pending = s.pending ? ` · ${s.pending} being scored` : "";
    left.textContent = s.max_submissions === null
      ? `${s.submissions} sent (no limit)${pending}`
      : `${s.submissions} of ${s.max_submissions} used, ${s.left} left${pending}`;
    left.dataset.left = s.left === null ? "" : String(s.left);
    drawWindow();
  }

  // Upload is enabled while the team's window is open and it has submissions left.
  function uploadBlock(c) {
    const s = standings[c.slug];
    const left = Podium.remaining(c);
    if (c.state === "waiting") return "Uploads open when the organizers start this challenge's clock.";
    if (c.state === "closed" || (c.state === "running" && left <= 0)) {
      return c.deadline ? `Time is up: uploads closed at ${Podium.formatClock(c.deadline)}.`
                        : "Time is up: uploads are closed.";
    }
    if (s && s.left === 0) return `Your team has used all ${s.max_submissions} submissions.`;
    return null;
  }

  function drawWindow() {
    const challenges = PodiumClock.challenges;
    for (const form of document.querySelectorAll("form[data-upload]")) {
      const c = challenges[form.dataset.upload];
      if (!c) continue;
      const reason = uploadBlock(c);
      const button = form.querySelector("button");
      const note = form.querySelector("[data-upload-reason]");
      button.disabled = Boolean(reason) || Boolean(uploading[c.slug]);
      form.querySelector("input[type=file]").disabled = Boolean(reason);
      if (note.textContent !== (reason || "")) note.textContent = reason || "";
      note.hidden = !reason;
      const ext = document.querySelector(`[data-extension-of="${c.slug}"]`);
      if (ext) {
        const text = c.extension_s
          ? `Your team was given ${Math.round(c.extension_s / 6) / 10} extra minutes` +
            (c.state === "running" && c.deadline ? `: your deadline is ${Podium.formatClock(c.deadline)}.` : ".")
          : "";
        if (ext.textContent !== text) ext.textContent = text;
        ext.hidden = !text;
      }
    }
  }

  // `known`: the page was rendered with it, its standing is already up to date.
  function remember(s, known = false) {
    const seen = (bySlug[s.challenge] = bySlug[s.challenge] || {});
    const old = seen[s.id];
    if (old && ORDER[old.status] > ORDER[s.status]) s = { ...s, ...old };
    seen[s.id] = s;
    drawHistory(s.challenge);
    drawLatest(s.challenge);
    if (!known && (!old || old.status !== s.status)) refreshStanding(s.challenge);
  }

  function ask(text, yes) {
    dialog.querySelector(".confirm-text").textContent = text;
    dialog.querySelector("button[value=yes]").textContent = yes;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    });
  }

  // The same bytes sent before (same size, then same SHA-256) are flagged before they count.
  async function duplicateOf(slug, file) {
    const earlier = Object.values(bySlug[slug] || {}).filter((s) => s.size === file.size);
    if (!earlier.length) return null;
    const digest = await Sha256.ofFile(file);
    return earlier.sort((a, b) => b.id - a.id).find((s) => s.sha256 === digest) || null;
  }

  async function upload(form) {
    const slug = form.dataset.upload;
    const input = form.querySelector("input[type=file]");
    const bar = form.querySelector("progress");
    const line = document.querySelector(`[data-status-of="${slug}"]`);
    if (!input.files.length) {
      setLine(line, "Pick the file to upload first.", "error");
      return;
    }
    const file = input.files[0];
    uploading[slug] = true;
    drawWindow();
    try {
      const same = await duplicateOf(slug, file);
      if (same) {
        const s = standings[slug];
        const cost = s && s.max_submissions !== null
          ? ` It would use one of your ${s.left} remaining submissions.` : "";
        const again = await ask(`${file.name} is identical to submission #${same.id} ` +
                                `(${nameOf(same)}, sent ${Podium.formatClock(same.received_at)}).` +
                                `${cost} Upload it again?`, "Upload it again");
        if (!again) {
          setLine(line, `Not sent: ${file.name} is the same file as #${same.id}.`, "cancelled");
          return;
        }
      }
    } finally {
      uploading[slug] = false;
    }
    send(form, slug, file, bar, line);
  }

  function send(form, slug, file, bar, line) {
    const data = new FormData();
    data.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/challenges/${slug}/submissions`);
    uploading[slug] = true;
    drawWindow();
    bar.hidden = false;
    bar.value = 0;
    setLine(line, `Uploading ${file.name}…`, "uploading");
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.value = e.loaded / e.total;
      setLine(line, `Uploading ${file.name}… ${Math.floor(100 * e.loaded / e.total)} % ` +
                    `(${size(e.loaded)} of ${size(e.total)})`, "uploading");
    };
    const done = () => {
      uploading[slug] = false;
      bar.hidden = true;
      drawWindow();
    };
    xhr.onload = () => {
      done();
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) {
        localNames[body.id] = file.name;
        form.reset();
        remember({ challenge: slug, ...body });
      } else {
        const message = (body.error && body.error.message) || `Refused (HTTP ${xhr.status})`;
        setLine(line, `Not received: ${message}`, "refused");
        line.dataset.code = (body.error && body.error.code) || "";
      }
    };
    xhr.onerror = () => {
      done();
      setLine(line, "The upload did not reach the server: it is NOT received. Send it again.",
              "refused");
    };
    line.dataset.code = "";
    xhr.send(data);
  }

  function start(submissions) {
    for (const s of submissions) remember(s, true);
    for (const slug of Object.keys(standings)) drawStanding(slug);
    for (const form of document.querySelectorAll("form[data-upload]")) {
      form.addEventListener("submit", (e) => { e.preventDefault(); upload(form); });
    }
    PodiumClock.onRender(drawWindow);
    Podium.syncClock().catch(() => {});
    Podium.live(["clock", "submissions"], (m) => {
      if (m.type === "clock") {
        PodiumClock.update(m.challenges);
        for (const c of m.challenges) {
          const link = document.querySelector(`[data-download="${c.slug}"]`);
          if (link && c.state !== "waiting") link.hidden = false;
          const key = document.querySelector(`[data-key-of="${c.slug}"]`);
          if (key && c.release && c.release.key) {
            key.replaceChildren(document.createTextNode("Key: "),
                                Podium.element("code", "sha", c.release.key));
          }
        }
      } else if (m.type === "submissions") {
        for (const s of m.submissions) remember(s);
      } else if (m.type === "submission") {
        remember(m);
      }
    });
  }

  return { start, feedback };
})();

{
  const page = Podium.pageData();
  PodiumClock.update(page.challenges || []);
  Team.start(page.submissions || []);
}

// The training batches open for the team (GET .../batches): a download link for each, with
// its size and SHA-256 (and a sealed one's key once it opens), and when the next one opens.
{
  for (const box of document.querySelectorAll("[data-batches-of]")) {
    const slug = box.dataset.batchesOf;
    Podium.api("GET", `/api/v1/challenges/${slug}/batches`).then((shown) => {
      const list = box.querySelector(".batch-list");
      list.replaceChildren(...shown.batches.map((b) => {
        const item = Podium.element("li", "batch");
        item.dataset.batch = b.name;
        const link = Podium.element("a", "", `Download ${b.name}`);
        link.href = b.archive;
        link.setAttribute("download", "");
        item.append(link);
        const what = b.parts > 1 ? ` (${b.set}, part ${b.part} of ${b.parts})` : ` (${b.set})`;
        item.append(document.createTextNode(what));
        if (b.size !== null) {
          const shown = b.size < 1048576 ? `${Math.max(1, Math.round(b.size / 1024))}\u00a0KiB`
            : `${(b.size / 1048576).toFixed(1)}\u00a0MiB`;
          item.append(document.createTextNode(`, ${shown}, SHA-256 `),
                      Podium.element("code", "sha", b.sha256));
        }
        if (b.sealed) {
          item.append(Podium.element("span", "key", b.key ? ` Key: ${b.key}`
            : " Sealed: its key appears here when it opens."));
        }
        return item;
      }));
      const next = shown.batches.length || shown.next_opens;
      const nextText = box.querySelector("[data-next-batch]");
      nextText.textContent = shown.next_opens
        ? `The next batch opens on ${shown.next_opens_local}.` : "";
      box.hidden = !next;
    }).catch(() => { box.hidden = true; });
  }
}
