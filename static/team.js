// The team page: upload with a progress bar, the receipt, then the result as soon as it is
// known, and the history — all without reloading.
"use strict";

const Team = (() => {
  const bySlug = {};

  function resultText(s) {
    if (s.status === "scored") {
      if (!s.metrics) return "valid";
      return Object.entries(s.metrics).map(([k, v]) => `${k} ${Number(v).toFixed(4)}`).join(", ");
    }
    if (s.status === "invalid") {
      return (s.errors || []).map((e) => e.message).join(" · ");
    }
    return s.status === "scoring" ? "scoring…" : "queued…";
  }

  // Warnings are truth-free notices about how the file was read: shown beside the result,
  // in the notice style, never as errors.
  function warningList(s) {
    const list = document.createElement("ul");
    list.className = "warnings";
    for (const w of s.warnings || []) {
      const item = document.createElement("li");
      item.dataset.code = w.code;
      item.textContent = w.message;
      list.append(item);
    }
    return list;
  }

  function drawHistory(slug) {
    const body = document.querySelector(`[data-history-of="${slug}"]`);
    if (!body) return;
    const list = Object.values(bySlug[slug] || {}).sort((a, b) => b.id - a.id);
    body.replaceChildren(...list.flatMap((s) => {
      const tr = document.createElement("tr");
      tr.dataset.id = String(s.id);
      tr.dataset.status = s.status;
      for (const [text, cls] of [[String(s.id)], [Podium.formatTime(s.received_at)], [s.filename],
                                 [`${(s.size / 1048576).toFixed(2)} MiB`], [s.sha256.slice(0, 12) + "…"],
                                 [s.status, `status-${s.status}`], [resultText(s), "result"]]) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        tr.append(td);
      }
      if (!(s.warnings || []).length) return [tr];
      const notes = document.createElement("tr");
      notes.className = "warnings-row";
      notes.dataset.warningsOf = String(s.id);
      const cell = document.createElement("td");
      cell.colSpan = 7;
      cell.append(warningList(s));
      notes.append(cell);
      return [tr, notes];
    }));
  }

  // Messages and the upload's own answer can arrive in any order: never go back to an
  // earlier state (the receipt says "queued" even when the result came first).
  const ORDER = { queued: 0, scoring: 1, scored: 2, invalid: 2 };

  function remember(s) {
    const known = (bySlug[s.challenge] = bySlug[s.challenge] || {});
    const old = known[s.id];
    if (old && ORDER[old.status] > ORDER[s.status]) s = { ...s, ...old };
    known[s.id] = s;
    drawHistory(s.challenge);
    const receipt = document.querySelector(`[data-receipt-of="${s.challenge}"]`);
    if (receipt && receipt.dataset.id === String(s.id)) showReceipt(s);
  }

  function showReceipt(s) {
    const receipt = document.querySelector(`[data-receipt-of="${s.challenge}"]`);
    receipt.dataset.id = String(s.id);
    receipt.hidden = false;
    receipt.textContent = `Receipt — submission ${s.id}, received ${s.received_at} (server time), ` +
      `${s.size} bytes, SHA-256 ${s.sha256}. Status: ${s.status}. ${resultText(s)}`;
    if ((s.warnings || []).length) receipt.append(warningList(s));
    receipt.dataset.status = s.status;
  }

  function upload(form) {
    const slug = form.dataset.upload;
    const input = form.querySelector("input[type=file]");
    const bar = form.querySelector("progress");
    const status = form.querySelector(".upload-status");
    if (!input.files.length) return;
    const data = new FormData();
    data.append("file", input.files[0]);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/challenges/${slug}/submissions`);
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Uploading…";
    form.querySelector("button").disabled = true;
    xhr.upload.onprogress = (e) => {
      if (!e.lengthComputable) return;
      bar.value = e.loaded / e.total;
      status.textContent = `Uploading… ${(e.loaded / 1048576).toFixed(1)} of ${(e.total / 1048576).toFixed(1)} MiB`;
    };
    xhr.onload = () => {
      form.querySelector("button").disabled = false;
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status === 202) {
        status.textContent = "Received. Scoring…";
        const s = { challenge: slug, filename: input.files[0].name, ...body };
        showReceipt(s);
        remember(s);
      } else {
        status.textContent = (body.error && body.error.message) || `Refused (${xhr.status})`;
        status.className = "upload-status error";
        status.dataset.code = (body.error && body.error.code) || "";
      }
    };
    xhr.onerror = () => {
      form.querySelector("button").disabled = false;
      status.textContent = "The upload did not reach the server: it is NOT received. Send it again.";
      status.className = "upload-status error";
    };
    status.className = "upload-status";
    xhr.send(data);
  }

  function start(submissions) {
    for (const s of submissions) remember(s);
    for (const form of document.querySelectorAll("form[data-upload]")) {
      form.addEventListener("submit", (e) => { e.preventDefault(); upload(form); });
    }
    Podium.syncClock().catch(() => {});
    Podium.live(["clock", "submissions"], (m) => {
      if (m.type === "clock") {
        PodiumClock.update(m.challenges);
        for (const c of m.challenges) {
          const link = document.querySelector(`[data-download="${c.slug}"]`);
          if (link && c.state !== "waiting") link.hidden = false;
          const key = document.querySelector(`[data-key-of="${c.slug}"]`);
          if (key && c.release && c.release.key) {
            key.textContent = "Key: ";
            const code = document.createElement("code");
            code.textContent = c.release.key;
            key.append(code);
          }
        }
      } else if (m.type === "submissions") {
        for (const s of m.submissions) remember(s);
      } else if (m.type === "submission") {
        remember(m);
      }
    });
  }

  return { start };
})();

{
  const page = Podium.pageData();
  PodiumClock.update(page.challenges);
  Team.start(page.submissions);
}
