// ChatbotToolCall: one tool call — a spinner and a human label while it runs, then success or failure;
// expandable (a native <details>) to show its input and result as plain text.
import { h, icon } from "../dom.js";
import { pretty } from "../format.js";
import { toolLabel } from "../labels.js";

const STATUS_WORDS = { running: "running", done: "succeeded", error: "failed", stopped: "stopped", declined: "declined", awaiting: "waiting for approval" };

/** The status icon of a tool call: a spinner while it runs, a check when it succeeded, else a cross. */
export function statusIcon(status) {
  return status === "running" ? h("span", { class: "cb-spinner" }) : icon(status === "done" ? "check" : "cross");
}

/** A titled block of plain text (a call's input or result). */
export function textSection(title) {
  const pre = h("pre", { class: "cb-tool-pre" });
  return { pre, el: h("div", { class: "cb-tool-section" }, h("div", { class: "cb-tool-heading", text: title }), pre) };
}

export class ChatbotToolCall {
  constructor() {
    this.part = null;
    this.statusIcon = h("span", { class: "cb-tool-status", "aria-hidden": "true" });
    this.label = h("span", { class: "cb-tool-label" });
    this.statusText = h("span", { class: "cb-sr" });
    this.input = textSection("Input");
    this.result = textSection("Result");
    this.el = h(
      "details",
      { class: "cb-tool" },
      h("summary", { class: "cb-tool-summary" }, this.statusIcon, this.label, this.statusText, icon("chevron")),
      h("div", { class: "cb-tool-body" }, this.input.el, this.result.el),
    );
  }

  update(part) {
    if (part === this.part) return;
    const previous = this.part;
    this.part = part;
    this.el.dataset.status = part.status;
    this.el.dataset.tool = part.name;
    this.label.textContent = toolLabel(part.name, part.status);
    this.statusText.textContent = `, ${STATUS_WORDS[part.status] ?? part.status}`;
    if (!previous || previous.status !== part.status) this.statusIcon.replaceChildren(statusIcon(part.status));
    if (!previous || previous.input !== part.input) this.input.pre.textContent = pretty(part.input);
    this.result.el.hidden = part.result === null;
    if (part.result !== null) this.result.pre.textContent = pretty(part.result);
  }
}
