// ChatbotMessages: the scrollable list. It follows new text while the reader is at the bottom, stays put
// when they have scrolled up, and then offers a "Jump to latest" control.
import { h, icon } from "../dom.js";
import { ChatbotMessage } from "./message.js";

// Within this many pixels of the end counts as "at the bottom".
const STICK_THRESHOLD = 32;

export class ChatbotMessages {
  constructor({ onRetry, onDecide, onSuggestion }) {
    this.views = new Map();
    this.onRetry = onRetry;
    this.onDecide = onDecide;
    this.onSuggestion = onSuggestion;
    this.atBottom = true;
    this.list = h("div", { class: "cb-list" });
    this.empty = h("div", { class: "cb-empty" });
    this.scroller = h("div", { class: "cb-messages", role: "region", "aria-label": "Conversation", tabindex: "0" }, this.empty, this.list);
    this.jump = h("button", { type: "button", class: "cb-jump", hidden: true, onclick: () => this.scrollToEnd(true) }, icon("down"), "Jump to latest");
    this.el = h("div", { class: "cb-messages-wrap" }, this.scroller, this.jump);
    this.scroller.addEventListener("scroll", () => {
      this.atBottom = this.#distanceToEnd() <= STICK_THRESHOLD;
      if (this.atBottom) this.jump.hidden = true;
    }, { passive: true });
  }

  #distanceToEnd() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
  }

  /** Scrolls to the newest message; `smooth` animates unless the user prefers reduced motion. */
  scrollToEnd(smooth = false) {
    const reduce = globalThis.matchMedia?.("(prefers-reduced-motion: reduce)").matches;
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smooth && !reduce ? "smooth" : "auto" });
    this.atBottom = true;
    this.jump.hidden = true;
  }

  /** Shows the empty state: a greeting and suggestions, or why the assistant is unavailable. */
  renderEmpty({ enabled, greeting, suggestions }) {
    if (enabled === false) {
      this.empty.replaceChildren(
        h("div", { class: "cb-empty-icon" }, icon("sparkle")),
        h("p", { class: "cb-empty-title", text: "The assistant is off" }),
        h("p", { class: "cb-empty-text", text: "It isn't configured on this server right now. Your administrator can turn it on." }),
      );
      return;
    }
    this.empty.replaceChildren(
      h("div", { class: "cb-empty-icon" }, icon("sparkle")),
      h("p", { class: "cb-empty-title", text: greeting }),
      h("p", { class: "cb-empty-text", text: "Ask about your organization's members and invitations, or ask me to make a change for you." }),
      h(
        "div",
        { class: "cb-suggestions" },
        suggestions.map((text) => h("button", { type: "button", class: "cb-suggestion", onclick: () => this.onSuggestion(text) }, text)),
      ),
    );
  }

  /** Brings the list in line with `messages` (unchanged messages are not touched). */
  update(messages, { forceScroll = false } = {}) {
    const stick = forceScroll || this.atBottom;
    const before = this.scroller.scrollHeight;
    const ids = new Set(messages.map((m) => m.id));
    for (const [id, view] of this.views) {
      if (!ids.has(id)) {
        view.el.remove();
        this.views.delete(id);
      }
    }
    let previous = null;
    for (const message of messages) {
      let view = this.views.get(message.id);
      if (!view) {
        view = new ChatbotMessage(message, { onRetry: this.onRetry, onDecide: this.onDecide });
        this.views.set(message.id, view);
        if (previous) previous.el.after(view.el);
        else this.list.prepend(view.el);
      } else {
        view.update(message);
      }
      previous = view;
    }
    this.empty.hidden = messages.length > 0;
    if (stick) this.scrollToEnd(false);
    else if (this.scroller.scrollHeight > before) this.jump.hidden = false;
  }

  view(id) {
    return this.views.get(id) ?? null;
  }
}
