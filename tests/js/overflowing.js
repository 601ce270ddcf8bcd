// Every element drawn outside the viewport, wider than its box (visibly, or clipped
// without an ellipsis), or scrolling sideways; SVG internals are the plots' own (tested
// apart in tests/deliberation/test_plots.py).
() => {
  const width = document.documentElement.clientWidth;
  const found = [];
  const name = (el) => {
    const data = [...el.attributes].filter((a) => a.name.startsWith("data-"))
      .map((a) => `[${a.name}=${a.value}]`).join("");
    const cls = typeof el.className === "string" && el.className ? "." + el.className.trim().replace(/\s+/g, ".") : "";
    return `${el.tagName.toLowerCase()}${cls}${data} "${(el.textContent || "").trim().slice(0, 40)}"`;
  };
  if (document.documentElement.scrollWidth > width + 1) {
    found.push(`the page scrolls sideways (${document.documentElement.scrollWidth} > ${width})`);
  }
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg") && el.tagName.toLowerCase() !== "svg") continue;
    if (el.closest("dialog:not([open])")) continue;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.right > width + 1 || box.left < -1) {
      found.push(`${name(el)} is outside the viewport (${Math.round(box.left)}..${Math.round(box.right)})`);
    }
    if (style.display === "inline" || el.clientWidth === 0) continue;
    const wider = el.scrollWidth > el.clientWidth + 1;
    const clips = ["hidden", "clip"].includes(style.overflowX);
    const scrolls = ["auto", "scroll"].includes(style.overflowX);
    if (wider && scrolls) found.push(`${name(el)} scrolls sideways`);
    else if (wider && clips && style.textOverflow !== "ellipsis") found.push(`${name(el)} clips its content`);
    else if (wider && !clips && !scrolls) found.push(`${name(el)} is wider than its box (${el.scrollWidth} > ${el.clientWidth})`);
  }
  return found;
}
