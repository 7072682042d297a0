// <chatbot-activity api-base="https://…">: for owners and admins, the organization's usage (tokens per day,
// people by tokens, for the days picked) beside the assistant's audit trail — every tool call, who asked
// for it, whether it was approved, what it did — in its own shadow root with the sheet's stylesheet. Like
// <chatbot-sheet>, it takes the host's token source as `element.getToken`.
import { ChatApi } from "./api.js";
import { ChatbotActivityTable } from "./components/activity-table.js";
import { ChatbotUsageReport } from "./components/usage-report.js";
import { ActivityController } from "./controllers/activity.js";
import { UsageReportController } from "./controllers/usage-report.js";
import { h, styledRoot } from "./dom.js";
import { upgradeProperty } from "./host.js";

const STYLESHEET = new URL("./chatbot.css", import.meta.url).href;

let instances = 0;

export class ChatbotActivityElement extends HTMLElement {
  static observedAttributes = ["api-base", "user-id"];

  #getToken = null;
  #api = null;
  #table;
  #activity;
  #report;
  #usage;

  constructor() {
    super();
    const id = `chatbot-activity-${++instances}`;
    this.#activity = new ActivityController({ api: () => this.#api, onChange: (state) => this.#table.update(state) });
    this.#usage = new UsageReportController({ api: () => this.#api, onChange: (state) => this.#report.update(state) });
    this.#report = new ChatbotUsageReport({ id: `${id}-usage`, onRange: (from, to) => this.#usage.load(from, to) });
    this.#table = new ChatbotActivityTable({
      id,
      heading: this.getAttribute("heading") || "Assistant activity",
      onFilter: (userId) => this.#activity.filter(userId),
      onLoadMore: () => this.#activity.loadMore(),
      onRefresh: () => this.refresh(),
    });
    const layout = h("div", { class: "cb-activity-layout" }, this.#report.el, this.#table.el);
    this.attachShadow({ mode: "open" }).append(...styledRoot(this.getAttribute("stylesheet") || STYLESHEET, "cb-root cb-activity-root", layout));
    this.#table.update(this.#activity.state);
    this.#report.update(this.#usage.state);
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

  /** Loads the usage of the days shown and the newest entries again (of the user filtered on, if any);
   * nothing without a token source. */
  refresh() {
    if (!this.#getToken || !this.#api) {
      this.#usage.reset();
      return this.#activity.reset();
    }
    return Promise.all([this.#usage.load(), this.#activity.refresh()]);
  }

  #createApi() {
    return new ChatApi({ baseUrl: this.apiBase, getToken: async (options) => (this.#getToken ? this.#getToken(options) : null) });
  }
}
