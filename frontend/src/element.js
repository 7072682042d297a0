// <chatbot-sheet api-base="https://…">: the embeddable element. It owns a shadow root (the host page's
// CSS cannot reach in, ours cannot leak out), the store and the API client, and assembles the panel
// (what is drawn) with the controllers (what happens). Controllers start when the sheet joins the page
// and stop when it leaves, so a removed sheet holds no stream, subscription or frame; put back, it
// starts again with its conversation intact.
import { ChatApi } from "./api.js";
import { ChatbotPanel } from "./components/panel.js";
import { ConversationController } from "./controllers/conversation.js";
import { ConversationsController } from "./controllers/conversations.js";
import { FrameScheduler } from "./controllers/frames.js";
import { IdentityController } from "./controllers/identity.js";
import { StatusController } from "./controllers/status.js";
import { UsageController } from "./controllers/usage.js";
import { safeSessionStorage, upgradeProperty } from "./host.js";
import { createChatStore } from "./store.js";
import { DEFAULT_SUGGESTIONS, normalizeSuggestions, visibleSuggestions } from "./suggestions.js";

export { tokenClaims } from "./controllers/identity.js";

const STYLESHEET = new URL("./chatbot.css", import.meta.url).href;

let instances = 0;

export class ChatbotSheetElement extends HTMLElement {
  static observedAttributes = ["api-base", "heading", "user-name", "hide-when-disabled"];

  #suggestions = DEFAULT_SUGGESTIONS;
  #storage = safeSessionStorage();
  #store = createChatStore({ storage: this.#storage });
  #api = null;
  #panel;
  #frames = new FrameScheduler();
  #identity;
  #usage;
  #status;
  #conversation;
  #conversations;
  #controllers;
  // The reopening of the signed-in user's conversation; a message waits for it (it goes into that one).
  #restoring = Promise.resolve();

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
      onDecide: (replyId, callId, approved) => this.#conversation.decide(replyId, callId, approved),
      onSuggestion: (text) => this.send(text),
      onConversations: () => (store.getState().view === "conversations" ? this.#showChat() : this.#showConversations()),
      list: {
        onOpen: (conversationId) => this.#openConversation(conversationId),
        onRename: (conversationId, title) => this.#conversations.rename(conversationId, title),
        onDelete: (conversationId) => this.#conversations.remove(conversationId),
        onLoadMore: () => this.#conversations.loadMore(),
        onReload: () => this.#conversations.show(),
        onBack: () => this.#showChat(),
      },
    });
    this.attachShadow({ mode: "open" }).append(...this.#panel.nodes);
    this.#identity = new IdentityController({ store, onSwitch: () => this.#userSwitched() });
    this.#usage = new UsageController({ store, api, signedIn: () => this.#identity.signedIn });
    this.#status = new StatusController({ store, api });
    this.#conversation = new ConversationController({
      store,
      api,
      prepare: async () => {
        await this.#identity.refresh();
        await this.#restoring;
      },
      onBusy: (busy) => {
        this.#render();
        if (!busy) this.#usage.refresh();
      },
      onTurn: () => this.#panel.followLatest(),
    });
    this.#conversations = new ConversationsController({ store, api, conversation: this.#conversation, storage: this.#storage });
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

  /**
   * Suggested first questions shown in an empty chat: strings, or `{text, permission}` shown only to
   * users whose role holds `permission` ("resource:action", as `/api/chatbot/usage` lists them).
   */
  get suggestions() {
    return this.#suggestions.map((item) => ({ ...item }));
  }
  set suggestions(list) {
    this.#suggestions = normalizeSuggestions(list);
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

  /** Starts a new chat (stopping a reply that is still streaming); the next message creates a conversation. */
  newChat() {
    this.#conversation.newChat();
    this.#conversations.hide();
    this.#render();
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
    this.#restoring = this.#identity.signedIn ? this.#conversations.restore() : Promise.resolve();
  }

  #showConversations() {
    this.#conversations.show();
    this.#render();
    this.#panel.conversations.focus();
  }

  #showChat() {
    this.#conversations.hide();
    this.#render();
    this.#panel.input.focus();
  }

  async #openConversation(conversationId) {
    let shown;
    try {
      shown = await this.#conversations.open(conversationId);
    } catch {
      return this.#panel.conversations.say("Couldn't open that conversation. Check your connection and try again.");
    }
    if (!shown) return this.#panel.conversations.say("That conversation no longer exists.");
    this.#panel.followLatest();
    this.#render();
    this.#panel.input.focus();
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
      suggestions: visibleSuggestions(this.#suggestions, state.permissions),
      hideButton: state.enabled === false && this.hasAttribute("hide-when-disabled"),
    });
  }
}
