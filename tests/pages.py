"""What the page tests share: logging a browser in, and reading a page's layout as rendered —
elements that overflow their box or the viewport, the size text is drawn at (SVG text scaled
by its picture), and colours as the browser computes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser import sign_in

PROJECTOR = {"width": 1920, "height": 1080}
LAPTOP = {"width": 1366, "height": 768}
SIZES = (LAPTOP, PROJECTOR)
MIN_ROOM_TEXT_PX = 18


def new_page(browser: Any, url: str, token: str | None = None, *,
             viewport: dict[str, int] = PROJECTOR, timezone_id: str | None = None) -> Any:
    """A page in a browser context of its own (its own cookies, size and time zone)."""
    context = browser.new_context(viewport=viewport, timezone_id=timezone_id)
    page = context.new_page()
    if token is not None:
        sign_in(context, url, token)
    return page


def script_errors(page: Any) -> list[str]:
    """Errors the page's scripts raise from now on (the list fills as they happen)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


JS = Path(__file__).parent / "js"


def _function(name: str) -> str:
    """A function expression from tests/js/, its leading comment left out (Playwright takes a
    string that starts as a function for one)."""
    lines = (JS / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("//"))


OVERFLOWING = _function("overflowing.js")
TEXT_SIZES = _function("text_sizes.js")



def overflowing(page: Any) -> list[str]:
    return list(page.evaluate(OVERFLOWING))


def text_sizes(page: Any, root: str | None = None) -> list[dict[str, Any]]:
    return list(page.evaluate(TEXT_SIZES, root))


def too_small(page: Any, root: str | None = None,
              minimum: float = MIN_ROOM_TEXT_PX) -> list[dict[str, Any]]:
    return [t for t in text_sizes(page, root) if t["size"] < minimum - 0.01]


def rgb(hex_colour: str) -> str:
    """'#0072B2' as the browser computes it: 'rgb(0, 114, 178)'."""
    value = hex_colour.lstrip("#")
    r, g, b = (int(value[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


LONG_TEAM = "Hounsfield Harriers of the Northern Radiology Department"


def event_with_a_long_name(event: Path) -> None:
    """The example event plus a team whose name is longer than any board column."""
    from tests.helpers import add_teams

    add_teams(event, [LONG_TEAM], ["sarcopenia", "nodules", "edss"])


def play_a_morning(server: Any) -> None:
    """Every clock started and every team's file scored, with a spread of results: what the
    room's screens show an hour into the final day."""
    import io
    import zipfile

    from tests.helpers import EXAMPLE_DIR

    files = EXAMPLE_DIR / "submissions"
    nodules = (files / "nodules-nodule-hunters.csv").read_bytes()
    edss = (files / "edss-myelin-minds.csv").read_bytes()
    masks = (files / "sarcopenia-lumbar-lab.zip").read_bytes()

    def surfaces_off(by: float) -> bytes:
        source, out = zipfile.ZipFile(io.BytesIO(masks)), io.BytesIO()
        with zipfile.ZipFile(out, "w") as target:
            for item in source.infolist():
                data = source.read(item)
                if item.filename == "surfaces.csv":
                    lines = data.decode().splitlines()
                    data = "\n".join([lines[0]] + [
                        f"{i},{float(v) * by:.1f}" for i, v in
                        (line.split(",") for line in lines[1:])]).encode()
                target.writestr(item, data)
        return out.getvalue()

    uploads = [
        ("nodules", "Lumbar Lab", nodules),
        ("nodules", "Nodule Hunters", nodules.replace(b"NOD002;0,698", b"NOD002;0,1")),
        ("nodules", LONG_TEAM, nodules.replace(b"NOD001;0,372", b"NOD001;0,99")),
        ("edss", "Myelin Minds", edss),
        ("edss", "Pixel Anatomy", edss.replace(b"MS001,0.6", b"MS001,4.5")),
        ("edss", LONG_TEAM, edss.replace(b"MS002,1.6", b"MS002,6.0")),
        ("sarcopenia", "Lumbar Lab", masks),
        ("sarcopenia", "Pixel Anatomy", surfaces_off(1.1)),
        ("sarcopenia", LONG_TEAM, surfaces_off(0.8)),
    ]
    tokens = server.tokens()
    for slug in ("sarcopenia", "nodules", "edss"):
        server.act(slug, "start")
    for slug, team, content in uploads:
        status, body = server.upload(slug, tokens[team], "predictions" + (
            ".zip" if slug == "sarcopenia" else ".csv"), content, "?wait=60")
        assert status == 202 and body["status"] == "scored", (slug, team, body)


def reveal_every_place(page: Any) -> int:
    """Presses Space on the reveal page until no place is left; returns the steps taken."""
    step = 0
    while step == 0 or page.get_attribute("#reveal-board", "data-more") == "true":
        step += 1
        page.keyboard.press("Space")
        page.wait_for_selector(f"#reveal-board[data-step='{step}']", state="attached")
    return step
