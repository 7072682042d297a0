// ChatbotPanel: everything inside the element's shadow root — the stylesheet, the launcher button, the
// sheet (messages and input, or the Conversations view) and the live region — drawn from the chat's
// state in one `update`.
import { Announcer } from "../controllers/announcer.js";
import { styledRoot } from "../dom.js";
import { ChatbotButton } from "./button.js";
import { ChatbotConversationList } from "./conversation-list.js";
import { ChatbotInput } from "./input.js";
import { ChatbotLiveRegion } from "./live-region.js";
import { ChatbotMessages } from "./messages.js";
import { ChatbotSheet } from "./sheet.js";

export class ChatbotPanel {
  #followLatest = false;
  #returnFocus = null;

  /** `id` prefixes the ids inside; the `on…` callbacks are what the user's actions ask for. */
  constructor({ id, title, stylesheet, onOpen, onClose, onNewChat, onSend, onStop, onRetry, onDecide, onSuggestion, onConversations, list }) {
    this.button = new ChatbotButton({ controls: `${id}-sheet`, onOpen });
    this.messages = new ChatbotMessages({ onRetry, onDecide, onSuggestion });
    this.input = new ChatbotInput({ id: `${id}-input`, onSend, onStop });
    this.conversations = new ChatbotConversationList({ id: `${id}-conversations`, ...list });
    this.sheet = new ChatbotSheet({ id: `${id}-sheet`, title, messages: this.messages, input: this.input, conversations: this.conversations, onClose, onNewChat, onConversations });
    this.liveRegion = new ChatbotLiveRegion();
    this.announcer = new Announcer({
      say: (text) => this.liveRegion.say(text),
      textOf: (replyId) => this.messages.view(replyId)?.plainText() ?? null,
    });
    this.nodes = styledRoot(stylesheet, "cb-root", this.button.el, this.sheet.el, this.liveRegion.el);
  }

  /** Makes the next update scroll to the newest message, wherever the reader had scrolled. */
  followLatest() {
    this.messages.atBottom = true;
    this.#followLatest = true;
  }

  /** Remembers what had focus before the sheet opened (other than the page itself or `host`). */
  rememberFocus(host) {
    const active = document.activeElement;
    this.#returnFocus = active && active !== document.body && active !== host ? active : null;
  }

  /** Gives focus back to what had it before the sheet opened, or to the launcher if that is gone. */
  returnFocus() {
    const target = this.#returnFocus?.isConnected ? this.#returnFocus : null;
    (target ?? this.button).focus();
    this.#returnFocus = null;
  }

  /** Moves focus into the open sheet: the message box (or the Conversations view), or Close when the assistant is off. */
  focusInside({ enabled, view }) {
    if (view === "conversations") return this.conversations.focus();
    (enabled === false ? this.sheet.close : this.input.textarea).focus();
  }

  /**
   * Draws `state` (the store's): `busy` while a reply is in flight, the sheet's `title`, the greeting's
   * `userName`, the empty chat's `suggestions` (texts), and `hideButton` when the launcher should not show.
   */
  update({ state, busy, title, userName, suggestions, hideButton }) {
    this.button.update({ open: state.open, hidden: hideButton });
    this.sheet.update({ open: state.open, usage: state.usage, title, view: state.view });
    this.conversations.update({ list: state.conversations, currentId: state.conversationId, visible: state.view === "conversations" });
    const name = userName ? String(userName).trim().split(/\s+/)[0] : null;
    this.messages.renderEmpty({ enabled: state.enabled, greeting: name ? `Hi ${name}, how can I help?` : "How can I help?", suggestions });
    this.messages.update(state.messages, { forceScroll: this.#followLatest });
    this.#followLatest = false;
    this.input.update({ streaming: busy, enabled: state.enabled });
    this.announcer.update(state.messages);
  }
}
