// A tiny DOM builder and the panel's icons (inline SVG built from path data: no markup strings).

const SVG_NS = "http://www.w3.org/2000/svg";

/** Creates an element: `h("button", {class: "x", onclick: fn}, "text", child)`. */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * The element's stylesheet as a <link> and a container for `children` that stays hidden until the
 * stylesheet has loaded (or failed), so the host never sees an unstyled flash. Returns the root's nodes.
 */
export function styledRoot(stylesheet, className, ...children) {
  const link = h("link", { rel: "stylesheet", href: stylesheet });
  const container = h("div", { class: className, hidden: true }, ...children);
  const reveal = () => (container.hidden = false);
  link.addEventListener("load", reveal);
  link.addEventListener("error", reveal);
  return [link, container];
}

const ICONS = {
  chat: ["M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12Z"],
  close: ["M6 6l12 12", "M18 6L6 18"],
  plus: ["M12 5v14", "M5 12h14"],
  send: ["M12 19V5", "M5 12l7-7 7 7"],
  stop: [],
  check: ["M5 12.5l4.5 4.5L19 7.5"],
  cross: ["M7 7l10 10", "M17 7L7 17"],
  chevron: ["M9 6l6 6-6 6"],
  down: ["M12 5v14", "M6 13l6 6 6-6"],
  retry: ["M20 11a8 8 0 1 0-2.3 5.7", "M20 4v7h-7"],
  history: ["M4 6h16", "M4 12h16", "M4 18h10"],
  pencil: ["M4 20h4L19 9l-4-4L4 16v4Z", "M13.5 6.5l4 4"],
  trash: ["M4 7h16", "M9 7V4h6v3", "M6 7l1 13h10l1-13"],
  back: ["M15 6l-6 6 6 6"],
  sparkle: ["M12 3l1.9 5.1L19 10l-5.1 1.9L12 17l-1.9-5.1L5 10l5.1-1.9Z", "M19 15l.8 2.2L22 18l-2.2.8L19 21l-.8-2.2L16 18l2.2-.8Z"],
};

/** An icon by name, decorative (hidden from assistive technology). */
export function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("cb-icon", `cb-icon--${name}`);
  if (name === "stop") {
    const rect = document.createElementNS(SVG_NS, "rect");
    for (const [k, v] of Object.entries({ x: 7, y: 7, width: 10, height: 10, rx: 2 })) rect.setAttribute(k, String(v));
    svg.append(rect);
    return svg;
  }
  for (const d of ICONS[name] ?? []) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}
