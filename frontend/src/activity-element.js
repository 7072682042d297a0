// <chatbot-activity api-base="https://…">: the assistant's audit trail for owners and admins — every tool
// call, who asked for it, whether it was approved, what it did — in its own shadow root with the sheet's
// stylesheet. Like <chatbot-sheet>, it takes the host's token source as `element.getToken`.
import { ChatApi } from "./api.js";
import { ChatbotActivityTable } from "./components/activity-table.js";
import { ActivityController } from "./controllers/activity.js";
import { styledRoot } from "./dom.js";
import { upgradeProperty } from "./host.js";

const STYLESHEET = new URL("./chatbot.css", import.meta.url).href;

let instances = 0;

export class ChatbotActivityElement extends HTMLElement {
  static observedAttributes = ["api-base", "user-id"];

  #getToken = null;
  #api = null;
  #table;
  #activity;

  constructor() {
    super();
    this.#activity = new ActivityController({ api: () => this.#api, onChange: (state) => this.#table.update(state) });
    this.#table = new ChatbotActivityTable({
      id: `chatbot-activity-${++instances}`,
      heading: this.getAttribute("heading") || "Assistant activity",
      onFilter: (userId) => this.#activity.filter(userId),
      onLoadMore: () => this.#activity.loadMore(),
      onRefresh: () => this.refresh(),
    });
    this.attachShadow({ mode: "open" }).append(...styledRoot(this.getAttribute("stylesheet") || STYLESHEET, "cb-root cb-activity-root", this.#table.el));
    this.#table.update(this.#activity.state);
  }

  connectedCallback() {
    this.#api = this.#createApi();
    upgradeProperty(this, "getToken");
    this.refresh();
  }

  attributeChangedCallback(name) {
    if (name === "api-base" && this.isConnected) this.#api = this.#createApi();
    if (name === "user-id") this.#activity.choose(this.getAttribute("user-id"));
    if (this.isConnected) this.refresh();
  }

  /** Base URL of the chatbot API (the `api-base` attribute); the page's own origin when absent. */
  get apiBase() {
    return this.getAttribute("api-base") || globalThis.location?.origin || "";
  }

  /** The host's token source, `async ({forceRefresh}) => jwt`, as for <chatbot-sheet>. Setting it reloads the list. */
  get getToken() {
    return this.#getToken;
  }
  set getToken(fn) {
    this.#getToken = typeof fn === "function" ? fn : null;
    if (this.isConnected) this.refresh();
  }

  /** Loads the newest entries again (of the user filtered on, if any); nothing without a token source. */
  refresh() {
    if (!this.#getToken || !this.#api) return this.#activity.reset();
    return this.#activity.refresh();
  }

  #createApi() {
    return new ChatApi({ baseUrl: this.apiBase, getToken: async (options) => (this.#getToken ? this.#getToken(options) : null) });
  }
}
