// <chatbot-sheet api-base="https://…">: the embeddable element. It owns a shadow root (the host page's
// CSS cannot reach in, ours cannot leak out), the store and the API client, and assembles the panel
// (what is drawn) with the controllers (what happens). Controllers start when the sheet joins the page
// and stop when it leaves, so a removed sheet holds no stream, subscription or frame; put back, it
// starts again with its conversation intact.
import { ChatApi } from "./api.js";
import { ChatbotPanel } from "./components/panel.js";
import { ConversationController } from "./controllers/conversation.js";
import { FrameScheduler } from "./controllers/frames.js";
import { IdentityController } from "./controllers/identity.js";
import { StatusController } from "./controllers/status.js";
import { UsageController } from "./controllers/usage.js";
import { createChatStore } from "./store.js";

export { tokenClaims } from "./controllers/identity.js";

const STYLESHEET = new URL("./chatbot.css", import.meta.url).href;
const DEFAULT_SUGGESTIONS = ["Who are the admins here?", "Show pending invitations", "How many members do we have?"];

let instances = 0;

export class ChatbotSheetElement extends HTMLElement {
  static observedAttributes = ["api-base", "heading", "user-name", "hide-when-disabled"];

  #suggestions = DEFAULT_SUGGESTIONS;
  #store = createChatStore({ storage: safeSessionStorage() });
  #api = null;
  #panel;
  #frames = new FrameScheduler();
  #identity;
  #usage;
  #status;
  #conversation;
  #controllers;

  constructor() {
    super();
    const id = `chatbot-${++instances}`;
    const store = this.#store;
    const api = () => this.#api;
    this.#panel = new ChatbotPanel({
      id,
      title: this.#title(),
      stylesheet: this.getAttribute("stylesheet") || STYLESHEET,
      onOpen: () => this.open(),
      onClose: () => this.close(),
      onNewChat: () => this.newChat(),
      onSend: (text) => this.send(text),
      onStop: () => this.stop(),
      onRetry: (replyId) => this.#conversation.retry(replyId),
      onSuggestion: (text) => this.send(text),
    });
    this.attachShadow({ mode: "open" }).append(...this.#panel.nodes);
    this.#identity = new IdentityController({ store, onSwitch: () => this.#userSwitched() });
    this.#usage = new UsageController({ store, api, signedIn: () => this.#identity.signedIn });
    this.#status = new StatusController({ store, api });
    this.#conversation = new ConversationController({
      store,
      api,
      prepare: () => this.#identity.refresh(),
      onBusy: (busy) => {
        this.#render();
        if (!busy) this.#usage.refresh();
      },
      onTurn: () => this.#panel.followLatest(),
    });
    // The store's changes reach the panel only while the sheet is in the page.
    let unsubscribe = null;
    const subscription = {
      hostConnected: () => (unsubscribe = store.subscribe(() => this.#requestRender())),
      hostDisconnected: () => unsubscribe?.(),
    };
    // Started in this order (frames before anything that asks for one, usage before the identity check
    // that may ask for it), stopped in reverse.
    this.#controllers = [this.#frames, subscription, this.#usage, this.#status, this.#identity, this.#conversation];
  }

  connectedCallback() {
    this.#api = this.#createApi();
    // A host may set properties before this script defined the element; re-apply them through the setters.
    for (const name of ["getToken", "suggestions"]) upgradeProperty(this, name);
    this.#render();
    for (const controller of this.#controllers) controller.hostConnected?.();
  }

  disconnectedCallback() {
    for (const controller of [...this.#controllers].reverse()) controller.hostDisconnected?.();
  }

  attributeChangedCallback(name) {
    if (name === "api-base" && this.isConnected) {
      this.#api = this.#createApi();
      this.#status.check();
    }
    if (name === "heading" || name === "user-name" || name === "hide-when-disabled") this.#requestRender();
  }

  /** Base URL of the chatbot API (the `api-base` attribute); the page's own origin when absent. */
  get apiBase() {
    return this.getAttribute("api-base") || globalThis.location?.origin || "";
  }

  /** The host's token source: `element.getToken = async () => jwt`. Setting it switches to that user. */
  get getToken() {
    return this.#identity.source;
  }
  set getToken(fn) {
    this.#identity.source = fn;
    if (this.isConnected) this.#identity.refresh();
  }

  /** Suggested first questions shown in an empty chat. */
  get suggestions() {
    return [...this.#suggestions];
  }
  set suggestions(list) {
    this.#suggestions = Array.isArray(list) ? list.map(String) : [];
    this.#requestRender();
  }

  /** The store, for hosts that want to observe the conversation (`subscribe`, `getState`). */
  get store() {
    return this.#store;
  }

  /** Opens the sheet and moves focus into it (back where it was on close). */
  open() {
    if (this.#store.getState().open) return;
    this.#panel.rememberFocus(this);
    this.#store.getState().setOpen(true);
    this.#render();
    this.#panel.followLatest();
    this.#identity.refresh().then(() => this.#usage.refresh());
    // Focus moves into the sheet once it is visible (it is inert until then).
    this.#frames.schedule("focus", () => this.#panel.focusInside(this.#store.getState()));
    this.dispatchEvent(new CustomEvent("chatbot-open", { bubbles: true, composed: true }));
  }

  /** Closes the sheet, returning focus to where it was before it opened (or to the launcher). */
  close() {
    if (!this.#store.getState().open) return;
    this.#store.getState().setOpen(false);
    this.#render();
    this.#panel.returnFocus();
    this.dispatchEvent(new CustomEvent("chatbot-close", { bubbles: true, composed: true }));
  }

  /** Starts a new chat (stopping a reply that is still streaming). */
  newChat() {
    this.#conversation.newChat();
    this.#panel.input.focus();
  }

  /** Stops the reply in flight: aborts the stream and tells the server to cancel; the partial answer stays. */
  stop() {
    this.#conversation.stop();
  }

  /** Sends a message (as if typed) and streams the reply into the panel. */
  send(text) {
    return this.#conversation.send(text);
  }

  #createApi() {
    return new ChatApi({ baseUrl: this.apiBase, getToken: (options) => this.#identity.token(options) });
  }

  #title() {
    return this.getAttribute("heading") || "Assistant";
  }

  #userSwitched() {
    this.#conversation.abandon();
    this.#panel.followLatest();
    if (this.#store.getState().open) this.#usage.refresh();
  }

  // Many store changes arrive per frame while a reply streams; the panel is drawn once per frame.
  #requestRender() {
    this.#frames.schedule("render", () => this.#render());
  }

  #render() {
    const state = this.#store.getState();
    this.#panel.update({
      state,
      busy: this.#conversation.busy,
      title: this.#title(),
      userName: this.getAttribute("user-name") || this.#identity.claims?.name,
      suggestions: this.#suggestions,
      hideButton: state.enabled === false && this.hasAttribute("hide-when-disabled"),
    });
  }
}

// A property set on the element before its class was defined shadows the class's accessor: move it
// onto the accessor.
function upgradeProperty(element, name) {
  if (!Object.hasOwn(element, name)) return;
  const value = element[name];
  delete element[name];
  element[name] = value;
}

function safeSessionStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage blocked (sandboxed iframe, strict privacy settings)
  }
}
