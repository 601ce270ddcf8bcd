// Registration: the public form (a team with its members, its questions and the charter) and
// the organizers' list of registrations (approve, reject, a new token, revoke). The server
// checks every rule; this page only gathers the fields and shows its answer, naming the field.
"use strict";

(() => {
  async function call(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.field = data.error && data.error.field;
      error.code = data.error && data.error.code;
      throw error;
    }
    return data;
  }

  // -- the public form ---------------------------------------------------------------------
  const form = document.getElementById("register-form");
  if (form) {
    const list = form.querySelector("[data-members]");
    const row = document.getElementById("member-row");
    const min = Number(form.dataset.min);
    const max = Number(form.dataset.max);
    const errorBox = form.querySelector("[data-register-error]");

    function renumber() {
      const rows = list.querySelectorAll(".register-member");
      rows.forEach((el, i) => {
        el.querySelector(".member-number").textContent = `${i + 1}`;
        el.dataset.field = `members[${i}]`;
        el.querySelector("[data-remove-member]").disabled = rows.length <= min;
      });
      form.querySelector("[data-add-member]").disabled = rows.length >= max;
    }

    function addMember() {
      list.appendChild(row.content.cloneNode(true));
      renumber();
    }

    list.addEventListener("click", (event) => {
      const button = event.target.closest("[data-remove-member]");
      if (!button) return;
      button.closest(".register-member").remove();
      renumber();
    });
    form.querySelector("[data-add-member]").addEventListener("click", addMember);
    for (let i = 0; i < min; i += 1) addMember();

    function clearMarks() {
      for (const el of form.querySelectorAll(".invalid")) el.classList.remove("invalid");
      errorBox.hidden = true;
    }

    // The field the server named: `members[2].email` marks that input, `members` the list.
    function mark(field) {
      if (!field) return;
      const m = /^members\[(\d+)\](?:\.(\w+))?$/.exec(field);
      let el = null;
      if (m) {
        const member = list.querySelectorAll(".register-member")[Number(m[1])];
        el = member && (m[2] ? member.querySelector(`[data-key="${m[2]}"]`) : member);
      } else {
        el = form.querySelector(`[data-field="${field}"]`);
      }
      if (el) {
        el.classList.add("invalid");
        if (el.focus) el.focus();
      }
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearMarks();
      const members = [...list.querySelectorAll(".register-member")].map((el) => {
        const member = {};
        for (const input of el.querySelectorAll("[data-key]")) {
          member[input.dataset.key] = input.value;
        }
        return member;
      });
      const body = {
        team: form.elements.team.value,
        members,
        challenges: [...form.querySelectorAll("input[name=challenges]:checked")]
          .map((box) => box.value),
        charter_accepted: form.elements.charter_accepted.checked,
        charter_version: form.elements.charter_version.value,
      };
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const answer = await call("POST", "/api/v1/registrations", body);
        const done = document.querySelector("[data-register-done]");
        done.querySelector("[data-done-team]").textContent = answer.team;
        form.hidden = true;
        done.hidden = false;
      } catch (failure) {
        errorBox.textContent = failure.message;
        errorBox.hidden = false;
        mark(failure.field);
      } finally {
        button.disabled = false;
      }
    });
  }

  // -- the organizers' list ----------------------------------------------------------------
  const table = document.querySelector("[data-registrations]");
  if (table) {
    const data = JSON.parse(document.getElementById("page-data").textContent);
    const body = table.querySelector("tbody");
    const errorBox = document.querySelector("[data-console-error]");
    const tokenBox = document.querySelector("[data-token-box]");
    const rows = new Map(data.applications.map((a) => [a.id, a]));

    function text(tag, content, className) {
      const el = document.createElement(tag);
      el.textContent = content;
      if (className) el.className = className;
      return el;
    }

    function when(iso) {
      if (!iso) return "";
      const shown = new Date(iso).toLocaleString("sv-SE", { timeZone: data.timezone });
      return `${shown.slice(0, 16)} ${data.timezone}`;
    }

    function button(label, action, className) {
      const el = text("button", label, className || "quiet");
      el.type = "button";
      el.dataset.action = action;
      return el;
    }

    function draw(a) {
      const tr = document.createElement("tr");
      tr.dataset.id = a.id;
      tr.dataset.state = a.state;
      tr.appendChild(text("td", a.team, "team-name"));
      const members = document.createElement("td");
      const ul = document.createElement("ul");
      ul.className = "member-list";
      for (const m of a.members) {
        ul.appendChild(text("li", `${m.name} <${m.email}>, ${data.roles[m.role]}, `
                                  + `${m.affiliation} (${data.kinds[m.kind]})`));
      }
      members.appendChild(ul);
      tr.appendChild(members);
      tr.appendChild(text("td", a.challenges.join(", ")));
      tr.appendChild(text("td", `version ${a.charter_version}, accepted ${when(a.charter_accepted_at)}`));
      let state = a.state;
      if (a.state === "approved") state += a.token_active ? " · token active" : " · token revoked";
      if (a.state === "rejected" && a.reason) state += `: ${a.reason}`;
      if (a.decided_by) state += ` (by ${a.decided_by}, ${when(a.decided_at)})`;
      tr.appendChild(text("td", state, `state state-${a.state}`));
      const actions = document.createElement("td");
      actions.className = "registration-actions";
      if (a.state === "waiting") {
        actions.append(button("Approve", "approve", "primary"), button("Reject", "reject", "danger"));
      } else if (a.state === "approved") {
        actions.append(button("New token", "token"));
        if (a.token_active) actions.append(button("Revoke token", "revoke", "danger"));
      }
      tr.appendChild(actions);
      return tr;
    }

    function redraw() {
      body.replaceChildren(...[...rows.values()].map(draw));
      document.querySelector("[data-none]").hidden = rows.size > 0;
    }

    function showToken(answer) {
      tokenBox.querySelector("[data-token-team]").textContent = answer.team;
      tokenBox.querySelector("[data-token-value]").textContent = answer.token;
      tokenBox.querySelector("[data-token-link]").textContent =
        `${location.origin}/login?token=${encodeURIComponent(answer.token)}`;
      tokenBox.hidden = false;
    }

    tokenBox.querySelector("[data-token-hide]").addEventListener("click", () => {
      tokenBox.querySelector("[data-token-value]").textContent = "";
      tokenBox.querySelector("[data-token-link]").textContent = "";
      tokenBox.hidden = true;
    });

    const questions = {
      approve: (a) => `Approve team ${a.team}? The team is created and its token shown once.`,
      reject: (a) => `Reject team ${a.team}? Give a reason for the log (optional).`,
      token: (a) => `Give team ${a.team} a new token? Its current token stops working.`,
      revoke: (a) => `Revoke the token of team ${a.team}? It can no longer sign in.`,
    };

    body.addEventListener("click", async (event) => {
      const el = event.target.closest("button[data-action]");
      if (!el) return;
      const a = rows.get(Number(el.closest("tr").dataset.id));
      const action = el.dataset.action;
      let payload;
      if (action === "reject") {
        const reason = window.prompt(questions.reject(a), "");
        if (reason === null) return;
        payload = { reason };
      } else if (!window.confirm(questions[action](a))) {
        return;
      }
      errorBox.hidden = true;
      try {
        const answer = await call("POST", `/api/v1/registrations/${a.id}/${action}`, payload);
        rows.set(answer.id, answer);
        redraw();
        if (answer.token) showToken(answer);
      } catch (failure) {
        errorBox.textContent = failure.message;
        errorBox.hidden = false;
      }
    });
    redraw();
  }
})();
