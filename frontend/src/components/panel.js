// ChatbotPanel: everything inside the element's shadow root — the stylesheet, the launcher button, the
// sheet (messages and input) and the live region — drawn from the chat's state in one `update`.
import { Announcer } from "../controllers/announcer.js";
import { h } from "../dom.js";
import { ChatbotButton } from "./button.js";
import { ChatbotInput } from "./input.js";
import { ChatbotLiveRegion } from "./live-region.js";
import { ChatbotMessages } from "./messages.js";
import { ChatbotSheet } from "./sheet.js";

export class ChatbotPanel {
  #followLatest = false;
  #returnFocus = null;

  /** `id` prefixes the ids inside; the `on…` callbacks are what the user's actions ask for. */
  constructor({ id, title, stylesheet, onOpen, onClose, onNewChat, onSend, onStop, onRetry, onSuggestion }) {
    this.button = new ChatbotButton({ controls: `${id}-sheet`, onOpen });
    this.messages = new ChatbotMessages({ onRetry, onSuggestion });
    this.input = new ChatbotInput({ id: `${id}-input`, onSend, onStop });
    this.sheet = new ChatbotSheet({ id: `${id}-sheet`, title, messages: this.messages, input: this.input, onClose, onNewChat });
    this.liveRegion = new ChatbotLiveRegion();
    this.announcer = new Announcer({
      say: (text) => this.liveRegion.say(text),
      textOf: (replyId) => this.messages.view(replyId)?.plainText() ?? null,
    });
    // Hidden until the stylesheet has loaded, so the host never sees an unstyled flash.
    const link = h("link", { rel: "stylesheet", href: stylesheet });
    const container = h("div", { class: "cb-root", hidden: true }, this.button.el, this.sheet.el, this.liveRegion.el);
    const reveal = () => (container.hidden = false);
    link.addEventListener("load", reveal);
    link.addEventListener("error", reveal);
    this.nodes = [link, container];
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

  /** Moves focus into the open sheet: the message box, or Close when the assistant is off. */
  focusInside({ enabled }) {
    (enabled === false ? this.sheet.close : this.input.textarea).focus();
  }

  /**
   * Draws `state` (the store's): `busy` while a reply is in flight, the sheet's `title`, the greeting's
   * `userName`, the empty chat's `suggestions`, and `hideButton` when the launcher should not show.
   */
  update({ state, busy, title, userName, suggestions, hideButton }) {
    this.button.update({ open: state.open, hidden: hideButton });
    this.sheet.update({ open: state.open, usage: state.usage, title });
    const name = userName ? String(userName).trim().split(/\s+/)[0] : null;
    this.messages.renderEmpty({ enabled: state.enabled, greeting: name ? `Hi ${name}, how can I help?` : "How can I help?", suggestions });
    this.messages.update(state.messages, { forceScroll: this.#followLatest });
    this.#followLatest = false;
    this.input.update({ streaming: busy, enabled: state.enabled });
    this.announcer.update(state.messages);
  }
}
