// ChatbotMessage: one turn. The user's text is shown as plain text; the assistant's Markdown is rendered
// (and re-rendered as it streams, repaired while incomplete) with its tool calls in the order they ran; a
// call that needed the user's approval is a card with Approve / Deny.
import { undecidedCount } from "../approvals.js";
import { describeFailure } from "../api.js";
import { h, icon } from "../dom.js";
import { renderMarkdown } from "../markdown.js";
import { ChatbotApprovalCard } from "./approval-card.js";
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

// The view class a part is drawn with: a call that asked for approval stays a card once decided.
function viewClass(part) {
  if (part.kind !== "tool") return TextPart;
  return part.summary !== null && part.summary !== undefined ? ChatbotApprovalCard : ChatbotToolCall;
}

export class ChatbotMessage {
  /** `onRetry(replyId)` asks again; `onDecide(replyId, callId, approved)` is a decision on a card. */
  constructor(message, { onRetry, onDecide }) {
    this.message = null;
    this.onRetry = onRetry;
    this.onDecide = onDecide;
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
    const undecided = undecidedCount(message);
    message.parts.forEach((part, index) => {
      const kind = viewClass(part);
      let view = this.parts[index];
      if (!(view instanceof kind)) {
        const fresh = kind === ChatbotApprovalCard ? new ChatbotApprovalCard({ onDecide: (callId, approved) => this.#decide(callId, approved) }) : new kind();
        if (view) view.el.replaceWith(fresh.el);
        else this.body.append(fresh.el);
        this.parts[index] = view = fresh;
      }
      const last = index === message.parts.length - 1;
      if (view instanceof TextPart) view.update(part, streaming && last);
      else if (view instanceof ChatbotApprovalCard) view.update(part, message.status, undecided - (part.status === "awaiting" && part.decision === null ? 1 : 0));
      else view.update(part);
    });
    // The dots show while waiting for words: before the first text, and after a tool call finished.
    const last = message.parts.at(-1);
    this.typing.hidden = !(streaming && (!last || (last.kind === "tool" && last.status !== "running")));
    if (!previous || previous.status !== message.status || previous.error !== message.error) this.#renderFooter(message);
  }

  // After a decision its buttons are disabled: focus moves on to the next card still to decide, else
  // stays with this card (which now says what happens next).
  #decide(callId, approved) {
    const card = this.parts.find((view) => view instanceof ChatbotApprovalCard && view.part?.id === callId);
    const next = this.parts.find((view) => view instanceof ChatbotApprovalCard && view !== card && view.open);
    this.onDecide(this.message.id, callId, approved);
    if (next) next.focus();
    else card?.el.focus();
  }

  #renderFooter(message) {
    const items = [];
    if (message.status === "awaiting" && message.error) {
      // The server refused the decisions: say why; the cards are there to decide again.
      items.push(failureAlert(message.error, null));
    }
    if (message.status === "stopped") items.push(h("span", { class: "cb-tag" }, "Stopped"));
    if (message.status === "done" && message.stopReason === "max_tokens") items.push(h("span", { class: "cb-tag" }, "Cut off: the reply reached its length limit"));
    if (message.status === "done" && message.stopReason === "max_iterations") items.push(h("span", { class: "cb-tag" }, "Stopped after the maximum number of steps"));
    if (message.status === "error" || message.status === "interrupted") {
      const failure = message.error?.title ? message.error : describeFailure(message.error ?? { code: "internal_error" });
      const retry = failure.retryable
        ? h("button", { type: "button", class: "cb-retry", onclick: () => this.onRetry(message.id) }, icon("retry"), "Retry")
        : null;
      items.push(failureAlert(failure, retry));
    }
    this.footer.replaceChildren(...items);
    this.footer.hidden = items.length === 0;
  }
}

// An explained failure (`{kind, title, message}` of describeFailure), with an optional action.
function failureAlert(failure, action) {
  return h(
    "div",
    { class: `cb-error cb-error--${failure.kind}`, role: "alert" },
    h("div", { class: "cb-error-text" }, h("strong", { text: failure.title }), h("span", { text: failure.message })),
    action,
  );
}
