"""Screenshots of every page, from the demo event, into docs/screens/.

    .venv/bin/python docs/screens/make_screens.py [--out docs/screens] [--database-url URL]

Writes the demo event into a temporary folder, serves it with `podium serve` (its embedded
PostgreSQL unless --database-url or PODIUM_DATABASE_URL names one), plays part of a final day
through the API — every clock started, every example file uploaded as its team, one team
given extra time — and photographs each page in Debian's Chromium at 1920×1080 (the
projector) and, for the laptops' pages, 1366×768: the jury boards, two challenges' plots and
ranking analysis (sarcopenia and the 3-D nodule task, at both sizes), the winner reveal after
three places, a team page, the organizer console, the room clock and the room board.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.access import ensure_tokens  # noqa: E402
from server.demo import write_demo_event  # noqa: E402
from server.event import parse_event  # noqa: E402

PROJECTOR = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}
TEAM = "Les Voxelistes"
EXTENDED = "Dice Rollers"


class Server:
    def __init__(self, event: Path, data_dir: Path, database_url: str | None) -> None:
        args = [sys.executable, "-m", "server", "serve", "--event", str(event), "--port", "0",
                "--data-dir", str(data_dir)]
        if database_url:
            args += ["--database-url", database_url]
        self.log = (data_dir.parent / "server.log").open("w")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                        cwd=ROOT)
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("Podium is serving"):
                self.url = line.rsplit(" at ", 1)[1].strip().rstrip("/")
                break
        else:
            raise SystemExit(f"the server did not start; see {self.log.name}")
        self.tokens = {c.label: c.token for c in ensure_tokens(parse_event(event), data_dir)}

    def call(self, method: str, path: str, token: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> Any:
        request = urllib.request.Request(self.url + path, data=body, method=method,
                                         headers={"Authorization": f"Bearer {token}",
                                                  **(headers or {})})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read() or b"null")

    def act(self, slug: str, action: str, **body: Any) -> Any:
        return self.call("POST", f"/api/v1/challenges/{slug}/{action}",
                         self.tokens["organizer"], json.dumps(body).encode(),
                         {"Content-Type": "application/json"})

    def upload(self, slug: str, team: str, path: Path) -> Any:
        boundary = "podium-screens-boundary"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{path.name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                ).encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        return self.call("POST", f"/api/v1/challenges/{slug}/submissions?wait=60",
                         self.tokens[team], body,
                         {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


def play_the_day(server: Server, event: Path) -> None:
    for slug in ("sarcopenia", "nodules", "edss", "nodules-3d"):
        server.act(slug, "start", by="Claire")
    folder = event.parent / "submissions"
    expected = json.loads((folder / "expected.json").read_text())
    for name, promise in expected.items():
        server.upload(promise["challenge"], promise["team"], folder / name)
    server.act("sarcopenia", "extend", seconds=600, team=EXTENDED, by="Claire")
    server.act("nodules", "close", by="Claire")  # the reveal is of a closed challenge


def login(page: Any, url: str, token: str) -> None:
    """Signs in on the login page as a person would; an organizer gives a name."""
    page.goto(f"{url}/login?token={token}")
    name = page.locator("form[data-login-offer] input[name=operator]")
    if name.count():
        name.fill("Claire")
    with page.expect_navigation():
        page.click("form[data-login-offer] button[type=submit]")


def photograph(server: Server, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium is needed (apt-get install chromium)")
    shots = [
        ("jury", "jury", "/jury", PROJECTOR, None),
        ("jury-sarcopenia", "jury", "/jury/sarcopenia", PROJECTOR, "analysis"),
        ("jury-sarcopenia-laptop", "jury", "/jury/sarcopenia", LAPTOP, "analysis"),
        ("jury-nodules-3d", "jury", "/jury/nodules-3d", PROJECTOR, "analysis"),
        ("jury-nodules-3d-laptop", "jury", "/jury/nodules-3d", LAPTOP, "analysis"),
        ("reveal", "jury", "/jury/nodules?reveal=1", PROJECTOR, "reveal"),
        ("team", TEAM, "/team", LAPTOP, None),
        ("organizer", "organizer", "/organizer", LAPTOP, None),
        ("clock", None, "/clock", PROJECTOR, None),
        ("board", None, "/board", PROJECTOR, None),
    ]
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        for name, who, path, size, wait in shots:
            context = browser.new_context(viewport=size, timezone_id="UTC")
            page = context.new_page()
            if who is not None:
                login(page, server.url, server.tokens[who])
            page.goto(server.url + path)
            page.wait_for_load_state("networkidle")
            if wait == "analysis":
                page.wait_for_selector("[data-analysis][data-loaded]", state="attached",
                                       timeout=60000)
            elif wait == "reveal":
                for step in (1, 2, 3):
                    page.keyboard.press("Space")
                    page.wait_for_selector(f"#reveal-board[data-step='{step}']",
                                           state="attached")
                page.wait_for_selector("#reveal-analysis[data-loaded]", state="attached")
            elif path == "/jury":
                page.wait_for_selector("[data-board] tbody tr", state="attached")
            elif path == "/board":  # the demo's boards are the jury's and the teams'
                page.wait_for_selector("[data-board] tbody tr, [data-slate]", state="attached")
            page.wait_for_timeout(1200)  # the rows' slide and the clocks' first redraw
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=wait == "analysis")
            written.append(target)
            context.close()
        browser.close()
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens")
    parser.add_argument("--database-url", default=os.environ.get("PODIUM_DATABASE_URL"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="podium-screens-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)  # the embedded PostgreSQL runs as a user of its own
        event = write_demo_event(folder / "demo")
        server = Server(event, folder / "data", args.database_url)
        try:
            play_the_day(server, event)
            for path in photograph(server, args.out):
                print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
