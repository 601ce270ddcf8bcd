// The clock display: every challenge's remaining time, live.
"use strict";

{
  PodiumClock.update(Podium.pageData().challenges);
  Podium.syncClock().catch(() => {});
  Podium.live(["clock"], (m) => { if (m.type === "clock") PodiumClock.update(m.challenges); });
}
