// ChatbotInput: a textarea labelled "Message" that grows with its text. Enter sends, Shift+Enter adds a
// line; the "Send" button is replaced by "Stop" (same place, same size) while a reply streams.
import { h, icon } from "../dom.js";

const MAX_LENGTH = 8000;

export class ChatbotInput {
  constructor({ id, onSend, onStop }) {
    this.streaming = false;
    this.textarea = h("textarea", {
      id,
      class: "cb-textarea",
      rows: "1",
      maxlength: String(MAX_LENGTH),
      placeholder: "Ask anything…",
      autocomplete: "off",
      enterkeyhint: "send",
    });
    this.send = h("button", { type: "submit", class: "cb-send", "aria-label": "Send", title: "Send (Enter)" }, icon("send"));
    this.stop = h("button", { type: "button", class: "cb-stop", "aria-label": "Stop", title: "Stop", hidden: true, onclick: onStop }, icon("stop"));
    this.el = h(
      "form",
      { class: "cb-composer" },
      h("label", { for: id, class: "cb-sr", text: "Message" }),
      h("div", { class: "cb-field" }, this.textarea, h("div", { class: "cb-actions" }, this.send, this.stop)),
      h("p", { class: "cb-hint", "aria-hidden": "true" }, h("kbd", { text: "Enter" }), " to send · ", h("kbd", { text: "Shift" }), " + ", h("kbd", { text: "Enter" }), " for a new line"),
    );
    this.el.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#submit(onSend);
    });
    this.textarea.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.#submit(onSend);
      }
    });
    this.textarea.addEventListener("input", () => this.#resize());
  }

  #submit(onSend) {
    const text = this.textarea.value.trim();
    if (!text || this.streaming || this.textarea.disabled) return;
    this.textarea.value = "";
    this.#resize();
    onSend(text);
  }

  #resize() {
    this.textarea.style.height = "auto";
    this.textarea.style.height = `${Math.min(this.textarea.scrollHeight, 200)}px`;
  }

  update({ streaming, enabled }) {
    const focused = this.el.getRootNode().activeElement;
    const hadFocus = focused === this.send || focused === this.stop;
    this.streaming = streaming;
    this.send.hidden = streaming;
    this.stop.hidden = !streaming;
    this.textarea.disabled = enabled === false;
    this.send.disabled = enabled === false;
    // Keep keyboard users where they were when the button under them swaps.
    if (hadFocus) (streaming ? this.stop : this.textarea).focus();
  }

  focus() {
    this.textarea.focus();
  }
}
