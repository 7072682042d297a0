// ChatbotLiveRegion: a visually hidden, polite live region. Each announcement is a paragraph of its own
// (so a screen reader reads it once, whole); only the latest few are kept.
import { h } from "../dom.js";

const KEEP = 6;

export class ChatbotLiveRegion {
  constructor() {
    this.el = h("div", { class: "cb-sr", "aria-live": "polite", "aria-atomic": "false" });
  }

  /** Queues one announcement. */
  say(text) {
    this.el.append(h("p", { text }));
    while (this.el.childElementCount > KEEP) this.el.firstElementChild.remove();
  }
}
