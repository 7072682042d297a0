// ChatbotToolCall: one tool call — a spinner and a human label while it runs, then success or failure;
// expandable (a native <details>) to show its input and result as plain text.
import { h, icon } from "../dom.js";
import { toolLabel } from "../labels.js";

const STATUS_WORDS = { running: "running", done: "succeeded", error: "failed", stopped: "stopped" };

function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value ?? {}, null, 2);
}

export class ChatbotToolCall {
  constructor() {
    this.part = null;
    this.statusIcon = h("span", { class: "cb-tool-status", "aria-hidden": "true" });
    this.label = h("span", { class: "cb-tool-label" });
    this.statusText = h("span", { class: "cb-sr" });
    this.input = h("pre", { class: "cb-tool-pre" });
    this.result = h("pre", { class: "cb-tool-pre" });
    this.resultSection = h("div", { class: "cb-tool-section" }, h("div", { class: "cb-tool-heading", text: "Result" }), this.result);
    this.el = h(
      "details",
      { class: "cb-tool" },
      h("summary", { class: "cb-tool-summary" }, this.statusIcon, this.label, this.statusText, icon("chevron")),
      h("div", { class: "cb-tool-body" }, h("div", { class: "cb-tool-section" }, h("div", { class: "cb-tool-heading", text: "Input" }), this.input), this.resultSection),
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
    if (!previous || previous.status !== part.status) {
      this.statusIcon.replaceChildren(part.status === "running" ? h("span", { class: "cb-spinner" }) : icon(part.status === "done" ? "check" : "cross"));
    }
    if (!previous || previous.input !== part.input) this.input.textContent = pretty(part.input);
    this.resultSection.hidden = part.result === null;
    if (part.result !== null) this.result.textContent = pretty(part.result);
  }
}
