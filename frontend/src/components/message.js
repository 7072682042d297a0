// ChatbotMessage: one turn. The user's text is shown as plain text; the assistant's Markdown is rendered
// (and re-rendered as it streams, repaired while incomplete) with its tool calls in the order they ran.
import { describeFailure } from "../api.js";
import { h, icon } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { ChatbotToolCall } from "./tool-call.js";

class TextPart {
  constructor() {
    this.el = h("div", { class: "cb-md" });
    this.text = null;
    this.streaming = null;
  }

  update(part, streaming) {
    if (part.text === this.text && streaming === this.streaming) return;
    this.text = part.text;
    this.streaming = streaming;
    this.el.innerHTML = renderMarkdown(part.text, { streaming });
  }
}

export class ChatbotMessage {
  constructor(message, { onRetry }) {
    this.message = null;
    this.onRetry = onRetry;
    if (message.role === "user") {
      this.el = h("article", { class: "cb-msg cb-msg--user", "aria-label": "You said" }, (this.bubble = h("div", { class: "cb-bubble" })));
    } else {
      this.parts = [];
      this.body = h("div", { class: "cb-parts" });
      this.typing = h("div", { class: "cb-typing", "aria-hidden": "true" }, h("span"), h("span"), h("span"));
      this.footer = h("div", { class: "cb-msg-footer" });
      this.el = h("article", { class: "cb-msg cb-msg--assistant", "aria-label": "Assistant said" }, this.body, this.typing, this.footer);
    }
    this.update(message);
  }

  /** The plain text of the assistant's rendered Markdown so far (what a screen reader should hear). */
  plainText() {
    return this.parts ? this.parts.filter((p) => p instanceof TextPart).map((p) => p.el.textContent.trim()).join("\n") : "";
  }

  update(message) {
    if (message === this.message) return;
    const previous = this.message;
    this.message = message;
    if (message.role === "user") {
      this.bubble.textContent = message.text;
      return;
    }
    const streaming = message.status === "streaming";
    this.el.dataset.status = message.status;
    this.el.setAttribute("aria-busy", String(streaming));
    message.parts.forEach((part, index) => {
      let view = this.parts[index];
      if (!view) {
        view = part.kind === "tool" ? new ChatbotToolCall() : new TextPart();
        this.parts.push(view);
        this.body.append(view.el);
      }
      const last = index === message.parts.length - 1;
      if (view instanceof TextPart) view.update(part, streaming && last);
      else view.update(part);
    });
    // The dots show while waiting for words: before the first text, and after a tool call finished.
    const last = message.parts.at(-1);
    this.typing.hidden = !(streaming && (!last || (last.kind === "tool" && last.status !== "running")));
    if (!previous || previous.status !== message.status || previous.error !== message.error) this.#renderFooter(message);
  }

  #renderFooter(message) {
    const items = [];
    if (message.status === "stopped") items.push(h("span", { class: "cb-tag" }, "Stopped"));
    if (message.status === "done" && message.stopReason === "max_tokens") items.push(h("span", { class: "cb-tag" }, "Cut off: the reply reached its length limit"));
    if (message.status === "done" && message.stopReason === "max_iterations") items.push(h("span", { class: "cb-tag" }, "Stopped after the maximum number of steps"));
    if (message.status === "error" || message.status === "interrupted") {
      const failure = message.error?.title ? message.error : describeFailure(message.error ?? { code: "internal_error" });
      const retry = failure.retryable
        ? h("button", { type: "button", class: "cb-retry", onclick: () => this.onRetry(message.id) }, icon("retry"), "Retry")
        : null;
      items.push(
        h(
          "div",
          { class: `cb-error cb-error--${failure.kind}`, role: "alert" },
          h("div", { class: "cb-error-text" }, h("strong", { text: failure.title }), h("span", { text: failure.message })),
          retry,
        ),
      );
    }
    this.footer.replaceChildren(...items);
    this.footer.hidden = items.length === 0;
  }
}
