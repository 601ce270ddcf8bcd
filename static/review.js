// The review viewer: the exam's slices rendered by the server (one PNG per slice), scrolled
// with the mouse wheel, the arrow keys or the slider; the plane, the window (a preset or a typed
// level and width) and the overlay switched without reloading; the grade sent as JSON.
"use strict";

const Review = (() => {
  const exam = Podium.pageData().exam;
  const img = document.querySelector("[data-slice]");
  const frame = document.querySelector("[data-slice-frame]");
  const slider = document.querySelector("[data-slider]");
  const label = document.querySelector("[data-slice-label]");
  const windowLabel = document.querySelector("[data-window-label]");
  const error = document.querySelector("[data-viewer-error]");
  const overlay = document.querySelector("[data-overlay]");
  const state = { axis: "axial", window: exam.window.name, overlay: true,
                  index: {} };
  for (const axis of Object.keys(exam.slices)) state.index[axis] = Math.floor(exam.slices[axis] / 2);

  // One image in flight: while it loads, further scrolling only moves what is wanted next.
  let loading = false;
  let wanted = null;

  function url() {
    const params = new URLSearchParams({ window: state.window, overlay: state.overlay ? "1" : "0" });
    return `/api/v1/review/exams/${exam.id}/slices/${state.axis}/${state.index[state.axis]}?${params}`;
  }

  function show() {
    const n = exam.slices[state.axis];
    slider.max = String(n - 1);
    slider.value = String(state.index[state.axis]);
    label.textContent = `${state.axis} ${state.index[state.axis] + 1} / ${n}`;
    const w = state.window.includes(",") ? state.window.split(",") : null;
    windowLabel.textContent = w ? `window L ${w[0]} W ${w[1]}`
      : `window ${state.window.replace("_", " ")}`;
    for (const b of document.querySelectorAll("[data-axis]")) {
      b.classList.toggle("primary", b.dataset.axis === state.axis);
    }
    for (const b of document.querySelectorAll("[data-window]")) {
      b.classList.toggle("primary", b.dataset.window === state.window);
    }
    wanted = url();
    if (!loading) load();
  }

  function load() {
    if (wanted === null || img.dataset.src === wanted) { wanted = null; return; }
    loading = true;
    img.dataset.src = wanted;
    img.src = wanted;
    wanted = null;
  }

  img.addEventListener("load", () => {
    loading = false;
    error.hidden = true;
    img.dataset.loaded = img.dataset.src;
    load();
  });
  img.addEventListener("error", async () => {
    loading = false;
    try {
      const response = await fetch(img.dataset.src);
      const body = await response.json();
      error.textContent = body.error.message;
    } catch (e) {
      error.textContent = "the slice could not be loaded; try again";
    }
    error.hidden = false;
    load();
  });

  function step(by) {
    const n = exam.slices[state.axis];
    state.index[state.axis] = Math.min(n - 1, Math.max(0, state.index[state.axis] + by));
    show();
  }

  frame.addEventListener("wheel", (event) => {
    event.preventDefault();
    step(event.deltaY > 0 ? 1 : -1);
  }, { passive: false });
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea")) return;
    if (event.key === "ArrowUp" || event.key === "ArrowRight") { event.preventDefault(); step(1); }
    if (event.key === "ArrowDown" || event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    if (event.key === "PageUp") { event.preventDefault(); step(10); }
    if (event.key === "PageDown") { event.preventDefault(); step(-10); }
  });
  slider.addEventListener("input", () => {
    state.index[state.axis] = Number(slider.value);
    show();
  });
  for (const b of document.querySelectorAll("[data-axis]")) {
    b.addEventListener("click", () => { state.axis = b.dataset.axis; show(); });
  }
  const custom = document.querySelector("[data-custom-window]");
  // The level and width boxes always show the window on screen, so a preset can be adjusted.
  function showWindow(w) {
    custom.level.value = String(Math.round(w.level));
    custom.width.value = String(Math.round(w.width));
  }
  for (const b of document.querySelectorAll("[data-window]")) {
    b.addEventListener("click", () => {
      state.window = b.dataset.window;
      if (exam.presets[b.dataset.window]) showWindow(exam.presets[b.dataset.window]);
      show();
    });
  }
  showWindow(exam.window);
  custom.addEventListener("submit", (event) => {
    event.preventDefault();
    state.window = `${Number(custom.level.value)},${Number(custom.width.value)}`;
    show();
  });
  overlay.addEventListener("change", () => { state.overlay = overlay.checked; show(); });

  // -- the grade ------------------------------------------------------------------------------
  const form = document.querySelector("[data-grade-form]");
  const status = document.querySelector("[data-review-status]");
  const readings = document.querySelector("[data-readings]");
  let chosen = null;

  function readingText(r) {
    const name = r.reading === 3 ? "Third reading" : `Reading ${r.reading}`;
    return `${name}${r.yours ? " (yours)" : ""}: ${r.grade}${r.comment ? ` — ${r.comment}` : ""}`;
  }

  function showReadings(list) {
    readings.replaceChildren(...list.map((r) => {
      const p = document.createElement("p");
      p.className = "reading";
      p.dataset.reading = String(r.reading);
      p.textContent = readingText(r);
      return p;
    }));
  }

  if (form) {
    const send = form.querySelector("[data-send]");
    for (const b of form.querySelectorAll("[data-grade]")) {
      b.addEventListener("click", () => {
        chosen = b.dataset.grade;
        for (const other of form.querySelectorAll("[data-grade]")) {
          other.classList.toggle("primary", other === b);
          other.setAttribute("aria-pressed", String(other === b));
        }
        send.disabled = false;
      });
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!chosen) return;
      send.disabled = true;
      const response = await fetch(`/api/v1/review/exams/${exam.id}/grade`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ grade: chosen, comment: form.comment.value }) });
      const body = await response.json();
      if (!response.ok) {
        status.textContent = body.error.message;
        status.dataset.state = "refused";
        send.disabled = false;
        return;
      }
      form.hidden = true;
      showReadings(body.exam.readings);
      const settled = body.settled ? ` The exam is settled: ${body.settled}, ${body.stage}.` : "";
      status.textContent = `Your grade ${chosen} is recorded.${settled}`;
      status.dataset.state = "graded";
      if (body.exam.next) {
        const next = document.createElement("a");
        next.href = `/review/exams/${body.exam.next}`;
        next.dataset.next = "";
        next.textContent = ` Next exam (#${body.exam.next})`;
        status.append(next);
      }
    });
  }

  show();
  return { state };
})();
