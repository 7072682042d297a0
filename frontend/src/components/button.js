// ChatbotButton: the floating button that opens the sheet.
import { h, icon } from "../dom.js";

export class ChatbotButton {
  constructor({ controls, onOpen }) {
    this.el = h(
      "button",
      { type: "button", class: "cb-launcher", "aria-label": "Open chat", "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": controls, onclick: onOpen },
      icon("chat"),
    );
  }

  /** Reflects whether the sheet is open, and whether the button should show at all. */
  update({ open, hidden }) {
    this.el.setAttribute("aria-expanded", String(open));
    this.el.hidden = hidden || open;
  }

  focus() {
    this.el.focus();
  }
}
