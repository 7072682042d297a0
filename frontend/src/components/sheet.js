// ChatbotSheet: the slide-out dialog — header (title, today's usage, Conversations, New chat, Close),
// then either the chat (messages and input) or the Conversations view. Esc closes it.
import { h, icon } from "../dom.js";
import { formatResetTime } from "../api.js";

export class ChatbotSheet {
  constructor({ id, title, messages, input, conversations, onClose, onNewChat, onConversations }) {
    this.usageText = h("span", { class: "cb-usage-text" });
    this.usageBar = h("span", { class: "cb-usage-fill" });
    this.usage = h(
      "div",
      { class: "cb-usage", hidden: true },
      h("span", { class: "cb-usage-track", "aria-hidden": "true" }, this.usageBar),
      this.usageText,
    );
    this.title = h("h2", { id: `${id}-title`, class: "cb-title", text: title });
    this.conversationsButton = h(
      "button",
      { type: "button", class: "cb-icon-button", "aria-label": "Conversations", title: "Conversations", "aria-expanded": "false", "aria-controls": conversations.el.id, onclick: onConversations },
      icon("history"),
    );
    this.chat = h("div", { class: "cb-chat" }, messages.el, input.el);
    this.newChat = h("button", { type: "button", class: "cb-icon-button", "aria-label": "New chat", title: "New chat", onclick: onNewChat }, icon("plus"));
    this.close = h("button", { type: "button", class: "cb-icon-button", "aria-label": "Close chat", title: "Close chat", onclick: onClose }, icon("close"));
    this.el = h(
      "section",
      { id, class: "cb-sheet", role: "dialog", "aria-modal": "false", "aria-labelledby": `${id}-title`, "data-open": "false" },
      h(
        "header",
        { class: "cb-header" },
        h("div", { class: "cb-heading" }, this.title, this.usage),
        h("div", { class: "cb-header-actions" }, this.conversationsButton, this.newChat, this.close),
      ),
      this.chat,
      conversations.el,
    );
    this.el.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !event.defaultPrevented) {
        event.preventDefault();
        onClose();
      }
    });
  }

  /** Draws whether the sheet is `open`, today's `usage`, the `title`, and which `view` shows ("chat" or "conversations"). */
  update({ open, usage, title, view = "chat" }) {
    this.el.dataset.open = String(open);
    this.chat.hidden = view !== "chat";
    this.conversationsButton.setAttribute("aria-expanded", String(view === "conversations"));
    this.el.inert = !open;
    this.el.setAttribute("aria-hidden", String(!open));
    if (title !== undefined) this.title.textContent = title;
    if (!usage || !Number.isFinite(usage.used) || !Number.isFinite(usage.limit)) {
      this.usage.hidden = true;
      return;
    }
    const format = new Intl.NumberFormat(undefined);
    this.usage.hidden = false;
    this.usageText.textContent = `${format.format(usage.used)} / ${format.format(usage.limit)} tokens`;
    const ratio = usage.limit > 0 ? Math.min(1, usage.used / usage.limit) : 1;
    this.usageBar.style.width = `${(ratio * 100).toFixed(1)}%`;
    this.usage.dataset.level = ratio >= 0.9 ? "high" : ratio >= 0.7 ? "medium" : "low";
    const reset = usage.resetsAt ? formatResetTime(usage.resetsAt) : null;
    this.usage.title = `Tokens used today${reset ? `; resets ${reset}` : ""}`;
  }
}
