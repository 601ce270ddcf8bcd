// The center's upload panel on /center: one zip per exam, sent in chunks over the resumable
// upload API (tus' core: POST to open, PATCH at the server's offset, HEAD to learn it).
// A lost connection or a 409 is retried with backoff from the offset the server holds; each
// file's upload address is kept in localStorage under its fingerprint (question, name, size,
// last modified), so picking the same file after a reload resumes it. Files go one at a time.
"use strict";

(() => {
  const panel = document.querySelector("[data-send]");
  const list = panel && panel.querySelector("[data-send-list]");
  if (!list) return;
  const el = Podium.element;
  const MIB = 1024 * 1024;
  const TUS = { "Tus-Resumable": "1.0.0" };
  const CHUNK_TYPE = "application/offset+octet-stream";
  const STORE = "podium.center-uploads";
  const center = panel.dataset.center || "";
  const picker = panel.querySelector("[data-send-files]");
  const question = panel.querySelector("[data-send-question]");
  const drop = panel.querySelector("[data-send-drop]");
  const titles = Object.fromEntries([...question.options].map((o) => [o.value, o.textContent]));

  // -- what this browser remembers of unfinished uploads --------------------------------------
  function saved() {
    try {
      return JSON.parse(localStorage.getItem(STORE) || "{}") || {};
    } catch (error) {
      return {};
    }
  }
  function remember(fingerprint, entry) {
    const all = saved();
    all[fingerprint] = entry;
    try { localStorage.setItem(STORE, JSON.stringify(all)); } catch (error) { /* private mode */ }
  }
  function forget(fingerprint) {
    const all = saved();
    delete all[fingerprint];
    try { localStorage.setItem(STORE, JSON.stringify(all)); } catch (error) { /* private mode */ }
  }
  const fingerprintOf = (file, slug) =>
    JSON.stringify([center, slug, file.name, file.size, file.lastModified]);

  // -- one request: XMLHttpRequest, for the progress of the bytes sent ------------------------
  class Refusal extends Error {}      // the server's "no": shown as it says, never retried
  class Trouble extends Error {}      // the network or the server's trouble: retried

  function request(method, url, { headers = {}, body = null, onProgress = null } = {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [name, value] of Object.entries({ ...TUS, ...headers })) {
        xhr.setRequestHeader(name, value);
      }
      if (onProgress) xhr.upload.onprogress = (event) => onProgress(event.loaded);
      xhr.onload = () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (error) { /* HEAD, 204 */ }
        resolve({ status: xhr.status, header: (name) => xhr.getResponseHeader(name), data });
      };
      xhr.onerror = xhr.onabort = xhr.ontimeout = () =>
        reject(new Trouble("the connection to the server was lost"));
      xhr.send(body);
    });
  }

  function errorOf(response) {
    return (response.data && response.data.error) || {};
  }

  // A refusal in the server's words; what may pass (the network, a restart) is trouble.
  function failure(response) {
    const error = errorOf(response);
    if (response.status === 0 || response.status >= 500 || response.status === 408 ||
        error.code === "upload_interrupted") {
      return new Trouble(error.message || `the server answered ${response.status}`);
    }
    if (response.status === 401) {
      return new Refusal("you are signed out: open your login link again, then pick the file again to resume");
    }
    return new Refusal(error.message || `the server refused the upload (${response.status})`);
  }

  function base64(text) {
    const bytes = new TextEncoder().encode(text);
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  // "512 KiB", "3.25 MiB", "1.2 GiB": the unit that keeps a few digits.
  function size(bytes) {
    if (bytes === 0) return "0";
    if (bytes < MIB) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KiB`;
    if (bytes < 1024 * MIB) return `${(bytes / MIB).toFixed(bytes < 10 * MIB ? 2 : 1)} MiB`;
    return `${(bytes / 1024 / MIB).toFixed(2)} GiB`;
  }

  // -- one file's upload and its row ----------------------------------------------------------
  class Upload {
    constructor(file, slug) {
      this.file = file;
      this.slug = slug;
      this.fingerprint = fingerprintOf(file, slug);
      const stored = saved()[this.fingerprint];
      this.location = stored ? stored.location : null;
      this.offset = 0;
      this.inFlight = 0;
      this.samples = [];
      this.wake = null;
      this.row = el("li", "send-item");
      this.row.dataset.sendItem = file.name;
      this.name = el("strong", "send-name", file.name);
      this.status = el("span", "send-status");
      const head = el("div", "send-head");
      head.append(this.name, el("span", "send-question-name", titles[slug] || slug), this.status);
      this.bar = el("progress", "send-bar");
      this.bar.max = Math.max(1, file.size);
      this.bar.value = 0;
      this.bar.setAttribute("aria-label", `${file.name}: bytes sent`);
      this.numbers = el("p", "send-numbers");
      this.message = el("p", "send-message");
      this.retry = el("button", "quiet send-retry", "Retry now");
      this.retry.type = "button";
      this.retry.hidden = true;
      this.retry.addEventListener("click", () => this.wake && this.wake());
      this.row.append(head, this.bar, this.numbers, this.message, this.retry);
      this.state("queued", "waiting its turn");
      this.draw();
    }

    state(state, text) {
      this.row.dataset.state = state;
      this.status.textContent = text;
      this.status.className = `send-status send-status-${state}`;
      this.retry.hidden = state !== "waiting";
    }

    say(text, error = false) {
      this.message.replaceChildren();
      if (text) this.message.append(text);
      this.message.classList.toggle("error", error);
    }

    draw() {
      const sent = Math.min(this.file.size, this.offset + this.inFlight);
      this.bar.value = sent;
      this.row.dataset.offset = String(this.offset);
      const share = this.file.size ? Math.floor((100 * sent) / this.file.size) : 100;
      let text = `${size(sent)} of ${size(this.file.size)} (${share} %)`;
      const now = performance.now();
      this.samples.push([now, sent]);
      while (this.samples.length > 2 && now - this.samples[0][0] > 5000) this.samples.shift();
      const [t0, b0] = this.samples[0];
      if (this.row.dataset.state === "sending" && now - t0 > 500 && sent > b0) {
        const speed = ((sent - b0) * 1000) / (now - t0);
        const left = (this.file.size - sent) / speed;
        text += ` · ${size(speed)}/s` + (left >= 1 ? ` · about ${Podium.formatDuration(left)} left` : "");
      }
      this.numbers.textContent = text;
    }

    // Waits `ms`, or less when the center presses "Retry now" or the browser is back online.
    pause(ms) {
      return new Promise((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          window.removeEventListener("online", done);
          resolve();
        }
        this.wake = done;
        window.addEventListener("online", done);
      });
    }

    async run() {
      let delay = 1000;
      for (;;) {
        try {
          await this.attempt(() => { delay = 1000; });
          return;
        } catch (error) {
          if (error instanceof Refusal) {
            forget(this.fingerprint);
            this.state("refused", "refused");
            this.say(error.message, true);
            return;
          }
          const seconds = Math.round(delay / 1000);
          this.inFlight = 0;
          this.state("waiting", `${error.message}: trying again in ${seconds} s`);
          this.draw();
          await this.pause(delay);
          delay = Math.min(delay * 2, 30000);
        }
      }
    }

    async open() {
      const response = await request("POST", `/api/v1/challenges/${encodeURIComponent(this.slug)}/uploads`, {
        headers: { "Upload-Length": String(this.file.size),
                   "Upload-Metadata": `filename ${base64(this.file.name)}` } });
      if (response.status !== 201) throw failure(response);
      this.location = response.header("Location") || response.data.location;
      this.offset = 0;
      remember(this.fingerprint, { location: this.location, name: this.file.name,
                                   size: this.file.size, question: this.slug, center });
    }

    // One go: learn the server's offset (or open the upload), send the chunks from there,
    // then read what became of the zip. Throws Trouble to be retried, Refusal to stop.
    async attempt(progressed) {
      this.state("sending", "sending");
      if (this.location) {
        const head = await request("HEAD", this.location);
        if (head.status === 404) {
          forget(this.fingerprint);           // gone (another browser's, or cleaned): anew
          this.location = null;
        } else if (head.status === 200) {
          this.offset = Number(head.header("Upload-Offset")) || 0;
          if (this.offset) this.say(`resumed at ${size(this.offset)}: what the server already holds`);
        } else {
          throw failure(head);
        }
      }
      if (!this.location) await this.open();
      this.draw();
      while (this.offset < this.file.size) {
        const chunk = Number(panel.dataset.chunkBytes) || 8 * MIB;
        const end = Math.min(this.file.size, this.offset + chunk);
        const response = await request("PATCH", this.location, {
          headers: { "Upload-Offset": String(this.offset), "Content-Type": CHUNK_TYPE },
          body: this.file.slice(this.offset, end),
          onProgress: (loaded) => { this.inFlight = loaded; this.draw(); } });
        this.inFlight = 0;
        const error = errorOf(response);
        if (response.status === 204) {
          this.offset = Number(response.header("Upload-Offset"));
          progressed();
          if (end === this.file.size) this.state("sending", "checking the zip");
        } else if (response.status === 409 && error.code === "offset_mismatch") {
          // The server's copy says where to go on: ask it (HEAD), as after a cut.
          const head = await request("HEAD", this.location);
          if (head.status !== 200) throw failure(head);
          this.offset = Number(head.header("Upload-Offset"));
        } else if (response.status === 409 && error.code === "upload_closed") {
          break;                                // every byte is there already
        } else if (response.status === 404) {
          forget(this.fingerprint);
          this.location = null;
          throw new Trouble("the server no longer knows this upload; starting it again");
        } else {
          throw failure(response);
        }
        this.draw();
      }
      await this.outcome();
    }

    async outcome() {
      const response = await request("GET", this.location);
      if (response.status !== 200) throw failure(response);
      const upload = response.data;
      if (upload.state === "refused") {
        throw new Refusal((upload.error && upload.error.message) || "the zip was refused");
      }
      if (upload.state !== "received") {
        throw new Trouble("the server is still unpacking the zip");
      }
      forget(this.fingerprint);
      this.offset = this.file.size;
      this.state("done", "received");
      this.row.dataset.exam = String(upload.exam_id);
      const link = el("a", "", `exam ${upload.exam_id}`);
      link.href = `#exam-${upload.exam_id}`;
      this.message.classList.remove("error");
      this.message.replaceChildren("Received as ", link,
                                   ": de-identified and checked below, where it appears within seconds.");
      this.draw();
      this.follow(knownExams.get(upload.exam_id));
    }

    // Once received, the row says where its exam stands, as its card below does.
    follow(exam) {
      if (!exam || this.row.dataset.exam !== String(exam.id)) return;
      this.status.textContent = `received: ${Inclusion.standing(exam)}`;
    }

  }

  // -- the queue ------------------------------------------------------------------------------
  const uploads = new Map();   // fingerprint -> Upload (this page's)
  const queue = [];
  let running = false;

  async function next() {
    if (running) return;
    running = true;
    while (queue.length) {
      const upload = queue.shift();
      await upload.run();
      showUnfinished();
    }
    running = false;
  }

  function add(files) {
    const slug = question.value;
    for (const file of files) {
      const fingerprint = fingerprintOf(file, slug);
      const known = uploads.get(fingerprint);
      if (known && !["refused", "done"].includes(known.row.dataset.state)) continue;
      const upload = new Upload(file, slug);
      if (known) known.row.remove();
      uploads.set(fingerprint, upload);
      list.append(upload.row);
      if (!/\.zip$/i.test(file.name)) {
        upload.state("refused", "not sent");
        upload.say(`${file.name} is not a zip: zip the exam's folder (its DICOM files and its annotation) and send the zip`, true);
        continue;
      }
      queue.push(upload);
    }
    showUnfinished();
    next();
  }

  // What this browser left unfinished (a reload, a closed laptop): named, to pick again.
  function showUnfinished() {
    const box = panel.querySelector("[data-send-unfinished]");
    const open = new Set([...uploads.values()].filter((u) => u.row.dataset.state !== "refused")
      .map((u) => u.fingerprint));
    const left = Object.entries(saved()).filter(([fp, e]) => e.center === center && !open.has(fp));
    box.hidden = left.length === 0;
    box.textContent = left.length
      ? `Not finished on this computer: ${left.map(([, e]) => `${e.name} (${titles[e.question] || e.question})`).join(", ")}. ` +
        "Choose the same file for the same question to resume it."
      : "";
  }

  let knownExams = new Map((Podium.pageData().exams || []).map((e) => [e.id, e]));
  document.addEventListener("podium:exams", (event) => {
    knownExams = event.detail;
    for (const upload of uploads.values()) {
      if (upload.row.dataset.exam) upload.follow(knownExams.get(Number(upload.row.dataset.exam)));
    }
  });

  picker.addEventListener("change", () => {
    add([...picker.files]);
    picker.value = "";
  });
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (event) => {
      event.preventDefault();
      drop.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    drop.addEventListener(type, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    add([...event.dataTransfer.files]);
  });
  showUnfinished();
})();
