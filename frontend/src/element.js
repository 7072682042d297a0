// <chatbot-sheet api-base="https://…">: the embeddable element. It owns a shadow root (the host page's
// CSS cannot reach in, ours cannot leak out), the store, the API client, and the pieces of the panel.
import { nextAnnouncement } from "./announce.js";
import { ApiError, ChatApi, StreamInterrupted, describeFailure } from "./api.js";
import { ChatbotButton } from "./components/button.js";
import { ChatbotInput } from "./components/input.js";
import { ChatbotMessages } from "./components/messages.js";
import { ChatbotSheet } from "./components/sheet.js";
import { toHistory } from "./conversation.js";
import { h } from "./dom.js";
import { toolLabel } from "./labels.js";
import { createChatStore } from "./store.js";

const STYLESHEET = new URL("./chatbot.css", import.meta.url).href;
// After Stop, the server may still hold this user's lock for a moment: a 409 within this window is
// ours, and the next message waits and tries again instead of failing.
const STOP_GRACE_MS = 5000;
const DEFAULT_SUGGESTIONS = ["Who are the admins here?", "Show pending invitations", "How many members do we have?"];

let instances = 0;

/** The JWT's payload (unverified: only to key the stored conversation by user), or null. */
export function tokenClaims(token) {
  try {
    const part = String(token).split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export class ChatbotSheetElement extends HTMLElement {
  static observedAttributes = ["api-base", "heading", "user-name", "hide-when-disabled"];

  #getToken = null;
  #suggestions = DEFAULT_SUGGESTIONS;
  #store = createChatStore({ storage: safeSessionStorage() });
  #api = null;
  #abort = null;
  #stoppedAt = 0;
  #cancelling = null;
  #returnFocus = null;
  #frame = 0;
  #forceScroll = false;
  #announced = { id: null, length: 0, tools: new Map() };
  #claims = null;

  constructor() {
    super();
    const id = `chatbot-${++instances}`;
    const root = this.attachShadow({ mode: "open" });
    this.button = new ChatbotButton({ controls: `${id}-sheet`, onOpen: () => this.open() });
    this.messages = new ChatbotMessages({ onRetry: (messageId) => this.#retry(messageId), onSuggestion: (text) => this.send(text) });
    this.input = new ChatbotInput({ id: `${id}-input`, onSend: (text) => this.send(text), onStop: () => this.stop() });
    this.sheet = new ChatbotSheet({
      id: `${id}-sheet`,
      title: this.getAttribute("heading") || "Assistant",
      messages: this.messages,
      input: this.input,
      onClose: () => this.close(),
      onNewChat: () => this.newChat(),
    });
    this.announcer = h("div", { class: "cb-sr", "aria-live": "polite", "aria-atomic": "false" });
    // Hidden until the stylesheet has loaded, so the host never sees an unstyled flash.
    const link = h("link", { rel: "stylesheet", href: this.getAttribute("stylesheet") || STYLESHEET });
    const container = h("div", { class: "cb-root", hidden: true }, this.button.el, this.sheet.el, this.announcer);
    const reveal = () => (container.hidden = false);
    link.addEventListener("load", reveal);
    link.addEventListener("error", reveal);
    root.append(link, container);
    this.#store.subscribe(() => this.#schedule());
  }

  connectedCallback() {
    // A host may set properties before this script defined the element; re-apply them through the setters.
    for (const name of ["getToken", "suggestions"]) {
      if (Object.hasOwn(this, name)) {
        const value = this[name];
        delete this[name];
        this[name] = value;
      }
    }
    this.#api = new ChatApi({ baseUrl: this.apiBase, getToken: (options) => this.#token(options) });
    this.#render();
    this.#checkStatus();
    if (this.#getToken) this.#identify();
  }

  attributeChangedCallback(name) {
    if (name === "api-base" && this.isConnected) {
      this.#api = new ChatApi({ baseUrl: this.apiBase, getToken: (options) => this.#token(options) });
      this.#checkStatus();
    }
    if (name === "heading" || name === "user-name" || name === "hide-when-disabled") this.#schedule();
  }

  /** Base URL of the chatbot API (the `api-base` attribute); the page's own origin when absent. */
  get apiBase() {
    return this.getAttribute("api-base") || globalThis.location?.origin || "";
  }

  /** The host's token source: `element.getToken = async () => jwt`. Setting it switches to that user. */
  get getToken() {
    return this.#getToken;
  }
  set getToken(fn) {
    this.#getToken = typeof fn === "function" ? fn : null;
    if (this.isConnected) this.#identify();
  }

  /** Suggested first questions shown in an empty chat. */
  get suggestions() {
    return [...this.#suggestions];
  }
  set suggestions(list) {
    this.#suggestions = Array.isArray(list) ? list.map(String) : [];
    this.#schedule();
  }

  /** The store, for hosts that want to observe the conversation (`subscribe`, `getState`). */
  get store() {
    return this.#store;
  }

  open() {
    if (this.#store.getState().open) return;
    const active = document.activeElement;
    this.#returnFocus = active && active !== document.body && active !== this ? active : null;
    this.#store.getState().setOpen(true);
    this.#render();
    this.#forceScroll = true;
    this.#identify().then(() => this.#refreshUsage());
    // Focus moves into the sheet once it is visible (it is inert until then).
    requestAnimationFrame(() => (this.#store.getState().enabled === false ? this.sheet.close : this.input.textarea).focus());
    this.dispatchEvent(new CustomEvent("chatbot-open", { bubbles: true, composed: true }));
  }

  close() {
    if (!this.#store.getState().open) return;
    this.#store.getState().setOpen(false);
    this.#render();
    const target = this.#returnFocus?.isConnected ? this.#returnFocus : null;
    (target ?? this.button).focus();
    this.#returnFocus = null;
    this.dispatchEvent(new CustomEvent("chatbot-close", { bubbles: true, composed: true }));
  }

  /** Starts a new chat (stopping a reply that is still streaming). */
  newChat() {
    if (this.#abort) this.stop();
    this.#store.getState().clear();
    this.input.focus();
  }

  /** Stops the reply in flight: aborts the stream and tells the server to cancel; the partial answer stays. */
  stop() {
    const controller = this.#abort;
    if (!controller) return;
    this.#stoppedAt = Date.now();
    this.#cancelling = this.#api.cancel().catch(() => null);
    controller.abort();
  }

  /** Sends a message (as if typed) and streams the reply into the panel. */
  async send(text) {
    const message = String(text ?? "").trim();
    const state = this.#store.getState();
    if (!message || state.streamingId || this.#abort || state.enabled === false) return;
    this.#abort = new AbortController();
    const { signal } = this.#abort;
    this.input.update({ streaming: true, enabled: state.enabled });
    try {
      await this.#identify();
      await this.#settleCancel();
      const history = toHistory(this.#store.getState().messages);
      const id = this.#store.getState().startTurn(message);
      this.#forceScroll = true;
      await this.#stream(id, message, history, signal);
    } finally {
      this.#abort = null;
      this.#render();
      this.#refreshUsage();
    }
  }

  async #stream(id, message, history, signal) {
    const store = this.#store.getState();
    for (;;) {
      try {
        await this.#api.send({ message, history, signal, onEvent: (event) => store.applyEvent(id, event) });
        return;
      } catch (error) {
        if (signal.aborted) {
          store.finish(id, "stopped");
          return;
        }
        if (error instanceof ApiError && error.status === 409 && Date.now() - this.#stoppedAt < STOP_GRACE_MS) {
          await delay(300, signal);
          if (!signal.aborted) continue;
          store.finish(id, "stopped");
          return;
        }
        if (error instanceof ApiError && error.code === "chatbot_disabled") store.setEnabled(false);
        if (error instanceof StreamInterrupted) store.finish(id, "interrupted", describeFailure(error));
        else store.finish(id, "error", describeFailure(error));
        return;
      }
    }
  }

  async #retry(messageId) {
    if (this.#store.getState().streamingId || this.#abort) return;
    const question = this.#store.getState().takeBack(messageId);
    if (question !== null) await this.send(question);
  }

  async #settleCancel() {
    if (!this.#cancelling) return;
    const pending = this.#cancelling;
    this.#cancelling = null;
    await Promise.race([pending, delay(2000)]);
  }

  async #token(options) {
    return this.#getToken ? await this.#getToken(options) : null;
  }

  // Keys the stored conversation by who the token says the user is (and their organization).
  async #identify() {
    let claims = null;
    try {
      claims = tokenClaims(await this.#token());
    } catch {
      claims = null;
    }
    this.#claims = claims;
    const key = claims?.sub ? `${claims.sub}@${claims.org_id ?? ""}` : "anonymous";
    if (this.#store.getState().userKey !== key) {
      if (this.#store.getState().streamingId) this.stop();
      this.#store.getState().loadUser(key);
      this.messages.atBottom = true;
      this.#forceScroll = true;
      if (this.#store.getState().open) this.#refreshUsage();
    }
  }

  async #checkStatus() {
    try {
      const status = await this.#api.status();
      this.#store.getState().setEnabled(Boolean(status?.enabled));
    } catch {
      // Unknown: leave the panel usable; a send will say precisely what is wrong.
    }
  }

  async #refreshUsage() {
    if (!this.#getToken) return;
    try {
      const usage = await this.#api.usage();
      const tier = usage?.tiers?.user;
      if (tier) this.#store.getState().setUsage({ used: tier.used, limit: tier.limit, resetsAt: usage.resets_at });
    } catch {
      // The header simply shows no usage; chatting is unaffected.
    }
  }

  #schedule() {
    if (this.#frame) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = 0;
      this.#render();
    });
  }

  #render() {
    const state = this.#store.getState();
    const hideButton = state.enabled === false && this.hasAttribute("hide-when-disabled");
    this.button.update({ open: state.open, hidden: hideButton });
    this.sheet.update({ open: state.open, usage: state.usage, title: this.getAttribute("heading") || "Assistant" });
    const fullName = this.getAttribute("user-name") || this.#claims?.name;
    const name = fullName ? String(fullName).trim().split(/\s+/)[0] : null;
    this.messages.renderEmpty({ enabled: state.enabled, greeting: name ? `Hi ${name}, how can I help?` : "How can I help?", suggestions: this.#suggestions });
    this.messages.update(state.messages, { forceScroll: this.#forceScroll });
    this.#forceScroll = false;
    this.input.update({ streaming: Boolean(state.streamingId || this.#abort), enabled: state.enabled });
    this.#announce(state);
  }

  // Polite announcements: whole sentences of the reply as they complete, and each tool call's progress.
  #announce(state) {
    const reply = state.messages.at(-1);
    if (!reply || reply.role !== "assistant") return;
    if (this.#announced.id !== reply.id) {
      // A reply restored from storage is not news; only a live one is read out.
      const live = reply.status === "streaming";
      this.#announced = { id: reply.id, length: live ? 0 : Infinity, tools: new Map() };
      if (!live) return;
    }
    for (const part of reply.parts) {
      if (part.kind !== "tool" || this.#announced.tools.get(part.id) === part.status) continue;
      this.#announced.tools.set(part.id, part.status);
      this.#say(toolLabel(part.name, part.status));
    }
    const view = this.messages.view(reply.id);
    if (!view || this.#announced.length === Infinity) return;
    const next = nextAnnouncement(view.plainText(), this.#announced.length, reply.status !== "streaming");
    if (next) {
      this.#announced.length = next.upTo;
      if (next.text) this.#say(next.text);
    }
    if (reply.status !== "streaming") this.#announced.length = Infinity;
  }

  #say(text) {
    this.announcer.append(h("p", { text }));
    while (this.announcer.childElementCount > 6) this.announcer.firstElementChild.remove();
  }
}

function delay(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

function safeSessionStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage blocked (sandboxed iframe, strict privacy settings)
  }
}
