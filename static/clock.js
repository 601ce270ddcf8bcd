// The room's clock screen: every challenge's time left in the largest digits that fit, live,
// and the deadline on the event's wall clock.
"use strict";

{
  const page = Podium.pageData();
  PodiumClock.onRender((challenges) => {
    for (const c of Object.values(challenges)) {
      const note = document.querySelector(`[data-deadline-of="${c.slug}"]`);
      if (!note) continue;
      const text = c.state === "running" && c.deadline
        ? `· until ${Podium.formatClock(c.deadline)}` : "";
      if (note.textContent !== text) note.textContent = text;
    }
  });
  PodiumClock.update(page.challenges || []);
  for (const el of document.querySelectorAll("[data-clock].fit")) Podium.fit(el);
  Podium.syncClock().catch(() => {});
  Podium.live(["clock"], (m) => { if (m.type === "clock") PodiumClock.update(m.challenges); });
}
