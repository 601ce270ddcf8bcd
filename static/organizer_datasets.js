// The datasets view: "Open now…" opens a batch for every registered team after a confirmation,
// then reloads the schedule the server rendered.
"use strict";

(() => {
  const errorBox = document.querySelector("[data-datasets-error]");
  for (const button of document.querySelectorAll("[data-open-batch]")) {
    button.addEventListener("click", async () => {
      const { slug, openBatch: name } = button.dataset;
      if (!window.confirm(`Open batch ${name} of ${slug} now? Every registered team can then download it, and the split can no longer change.`)) {
        return;
      }
      button.disabled = true;
      const response = await fetch(`/api/v1/challenges/${slug}/batches/${name}/open`, {
        method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
        credentials: "same-origin",
      });
      if (response.ok) {
        window.location.reload();
        return;
      }
      const data = await response.json().catch(() => ({}));
      errorBox.textContent = (data.error && data.error.message) || response.statusText;
      errorBox.hidden = false;
      button.disabled = false;
    });
  }
})();
