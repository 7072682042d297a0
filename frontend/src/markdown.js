// Markdown → safe HTML. Model output is untrusted: raw HTML is shown as text, images become links,
// and DOMPurify (with an allow-list) runs last so nothing can run script or load remote content.
import DOMPurify from "dompurify";
import { Marked } from "marked";
import { repairMarkdown } from "./repair.js";

const ALLOWED_TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "input",
  "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = ["href", "title", "align", "start", "class", "type", "checked", "disabled"];
// http(s), mailto and tel links, and links within the page; `javascript:`, `data:` and the rest go.
const SAFE_URL = /^(?:https?:|mailto:|tel:|#)/i;

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&${{ "&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "#39" }[c]};`);
}

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    // Raw HTML from the model is displayed, never interpreted (a lone <br> in a table cell is kept).
    html({ text, block }) {
      if (/^<br\s*\/?>$/i.test(text.trim())) return "<br>";
      return block ? `<p>${escapeHtml(text.trim())}</p>\n` : escapeHtml(text);
    },
    // Images would load remote content (a tracking pixel, a data leak through the URL): show a link.
    image({ href, text, tokens }) {
      const plain = tokens ? this.parser.parseInline(tokens, this.parser.textRenderer) : text;
      const label = escapeHtml(plain || "image");
      return `<a href="${escapeHtml(href ?? "")}">Image: ${label}</a>`;
    },
  },
});

const purify = DOMPurify();
purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    const href = node.getAttribute("href");
    if (href === null || !SAFE_URL.test(href.trim())) node.removeAttribute("href");
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
  if (node.nodeName === "INPUT") {
    // Only GFM's task-list boxes: read-only checkboxes.
    if (node.getAttribute("type") !== "checkbox") node.remove();
    else node.setAttribute("disabled", "");
  }
  if (node.hasAttribute("class") && !(node.nodeName === "CODE" && /^language-[\w+#.-]+$/.test(node.getAttribute("class")))) {
    node.removeAttribute("class");
  }
});

/** Sanitizes an HTML string with the chat's allow-list. */
export function sanitize(html) {
  return purify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOW_ARIA_ATTR: false,
    ADD_ATTR: ["target", "rel"],
  });
}

/** Renders (possibly still streaming) Markdown to sanitized HTML. */
export function renderMarkdown(text, { streaming = false } = {}) {
  const source = streaming ? repairMarkdown(text) : text;
  return sanitize(marked.parse(source));
}
