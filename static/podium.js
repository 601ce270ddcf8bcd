// Podium's shared browser code: the server clock, the live connection, times in the event's
// zone, the page's data, digits that fill their box. No framework and no CDN: the venue may be
// offline. No inline script anywhere: each page's data is a JSON block (#page-data).
"use strict";

const Podium = (() => {
  // -- the server's clock ---------------------------------------------------------------------
  // offset = server time - local time, from the request with the shortest round trip, so a
  // laptop whose clock is minutes off still shows the server's remaining time.
  let offsetMs = 0;

  async function syncClock(samples = 5) {
    let best = null;
    for (let i = 0; i < samples; i++) {
      const t0 = Date.now();
      const response = await fetch("/api/v1/time", { cache: "no-store" });
      const t1 = Date.now();
      const body = await response.json();
      const server = Date.parse(body.server_time);
      const rtt = t1 - t0;
      if (best === null || rtt < best.rtt) best = { rtt, offset: server - (t0 + t1) / 2 };
    }
    offsetMs = best.offset;
    return offsetMs;
  }

  const now = () => Date.now() + offsetMs;

  // Seconds left for a challenge as served: a running one counts down to its deadline.
  function remaining(challenge) {
    if (challenge.state === "running" && challenge.deadline) {
      return Math.max(0, (Date.parse(challenge.deadline) - now()) / 1000);
    }
    return challenge.remaining_s;
  }

  function formatDuration(seconds) {
    const s = Math.ceil(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const mm = String(m).padStart(h ? 2 : 1, "0"), ss = String(r).padStart(2, "0");
    return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
  }

  // -- times as people read them: the event's zone, whatever the browser's -------------------
  const zone = document.body.dataset.timezone || "UTC";
  const formats = {};
  function formatter(seconds) {
    const key = seconds ? "s" : "m";
    if (!formats[key]) {
      formats[key] = new Intl.DateTimeFormat("en-GB", {
        timeZone: zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23",
        ...(seconds ? { second: "2-digit" } : {}) });
    }
    return formats[key];
  }

  // "10:05:09" (or "10:05") on the event's wall clock; the zone is named once per table or
  // sentence (zoneName), not on every cell.
  function formatTime(iso, { seconds = true } = {}) {
    if (!iso) return "";
    return formatter(seconds).format(new Date(iso));
  }

  // "10:05:09 Europe/Paris": a time in a sentence.
  function formatClock(iso) {
    return iso ? `${formatTime(iso)} ${zone}` : "";
  }

  // -- the live connection --------------------------------------------------------------------
  // Subscribes to channels, hands every message to onMessage, shows a banner while the
  // connection is down and reconnects with exponential backoff (0.5 s to 10 s).
  function live(channels, onMessage) {
    let delay = 500;
    const banner = document.getElementById("connection-banner");
    const setBanner = (text) => {
      if (!banner) return;
      banner.textContent = text || "";
      banner.hidden = !text;
    };
    function open() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      const ws = new WebSocket(`${scheme}://${location.host}/ws`);
      ws.onopen = () => {
        delay = 500;
        setBanner("");
        ws.send(JSON.stringify({ type: "subscribe", channels }));
        syncClock().catch(() => {});
      };
      ws.onmessage = (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "resync") {
          ws.send(JSON.stringify({ type: "subscribe", channels: message.channels }));
          return;
        }
        onMessage(message);
      };
      ws.onclose = () => {
        setBanner(`Connection to the server lost — reconnecting in ${Math.round(delay / 100) / 10} s…`);
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 10000);
      };
    }
    open();
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.code = data.error && data.error.code;
      throw error;
    }
    return data;
  }

  // What the server rendered the page with: a JSON block, read once.
  let page = null;
  function pageData() {
    if (page === null) {
      const block = document.getElementById("page-data");
      page = block ? JSON.parse(block.textContent) : {};
    }
    return page;
  }

  // -- digits that fill their box -------------------------------------------------------------
  // The largest font size at which the element's text fits its box on one line: measured at
  // 100 px, then scaled. The box's size must not depend on its font (see .fit in the CSS).
  function fit(el) {
    const text = el.firstElementChild || el;
    el.style.fontSize = "100px";
    const width = text.scrollWidth, height = text.offsetHeight;
    if (!width || !height) return;
    const scale = Math.min(el.clientWidth / width, el.clientHeight / height);
    el.style.fontSize = `${Math.max(10, Math.floor(100 * scale * 0.96))}px`;
  }

  function element(tag, className, text) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  return { syncClock, now, remaining, formatDuration, formatTime, formatClock, live, api,
           pageData, fit, element, zone, get offsetMs() { return offsetMs; } };
})();

// -- the clock display (any page with [data-clock] elements) -----------------------------------
// Each element with data-clock="SLUG" shows that challenge's remaining time, red in the last
// five minutes and "Time is up" at zero. An element with the class "fit" has its digits made
// as large as its box allows, whenever their length changes or the window is resized.
const PodiumClock = (() => {
  let challenges = {};
  const listeners = [];
  const LAST_MINUTES = 5 * 60;

  function render() {
    for (const el of document.querySelectorAll("[data-clock]")) {
      const c = challenges[el.dataset.clock];
      if (!c) continue;
      const left = Podium.remaining(c);
      const over = c.state === "closed" || (c.state !== "waiting" && left <= 0);
      const text = over ? "Time is up" : Podium.formatDuration(left);
      const target = el.querySelector(".digits") || el;
      if (target.textContent !== text) {
        const refit = target.textContent.length !== text.length;
        target.textContent = text;
        if (refit && el.classList.contains("fit")) Podium.fit(el);
      }
      el.classList.toggle("late", !over && c.state !== "waiting" && left <= LAST_MINUTES);
      el.classList.toggle("over", over);
      el.dataset.state = over ? "closed" : c.state;
      el.dataset.remaining = String(Math.round(left));
      const state = document.querySelector(`[data-state-of="${c.slug}"]`);
      if (state) state.textContent = over ? "closed" : c.state;
    }
    for (const listener of listeners) listener(challenges);
  }

  function update(list) {
    challenges = Object.fromEntries(list.map((c) => [c.slug, c]));
    render();
  }

  // Called after every redraw (four times a second) with the challenges by slug.
  function onRender(listener) { listeners.push(listener); }

  window.addEventListener("resize", () => {
    for (const el of document.querySelectorAll("[data-clock].fit")) Podium.fit(el);
  });
  setInterval(render, 250);
  return { update, onRender, get challenges() { return challenges; } };
})();
