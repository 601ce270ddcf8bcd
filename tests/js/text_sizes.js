// The size every visible text is drawn at, in CSS pixels: an HTML element's font size, an
// SVG text's font size times the scale its picture is drawn at.
(root) => {
  const out = [];
  const scope = root ? document.querySelectorAll(root) : [document.body];
  for (const top of scope) {
    for (const el of [top, ...top.querySelectorAll("*")]) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const style = getComputedStyle(el);
      if (style.display === "none" || style.visibility === "hidden") continue;
      if (el.closest("title") || el.closest("[hidden]") || el.closest("dialog:not([open])")) continue;
      const box = el.getBoundingClientRect();
      if (box.width === 0 && box.height === 0) continue;
      let size = parseFloat(style.fontSize);
      const svg = el.closest("svg");
      if (svg) {
        const matrix = el.getScreenCTM();
        size *= Math.hypot(matrix.a, matrix.b);
      }
      out.push({ text: el.textContent.trim().slice(0, 40), size, svg: Boolean(svg),
                 tag: el.tagName.toLowerCase() });
    }
  }
  return out;
}
