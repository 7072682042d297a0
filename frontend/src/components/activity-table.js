// ChatbotActivityTable: the audit trail as a table — time, who, tool, status, approved, via, and the input
// and result behind a disclosure — newest first, with "Load more", a filter by user and Refresh. Says so
// plainly when the caller may not see it.
import { auditRow } from "../audit.js";
import { h, icon } from "../dom.js";
import { textSection } from "./tool-call.js";

const COLUMNS = ["Time", "User", "Tool", "Status", "Approved", "Via", "Details"];

function rowOf(entry) {
  const row = auditRow(entry);
  const input = textSection("Input");
  input.pre.textContent = row.input;
  const result = textSection("Result");
  result.pre.textContent = row.result;
  result.el.hidden = row.result === "";
  return h(
    "tr",
    { "data-status": row.statusKind },
    h("td", {}, h("time", { datetime: row.at, text: row.time })),
    h("td", { text: row.user }),
    h("td", {}, h("code", { text: row.tool })),
    h("td", {}, h("span", { class: `cb-audit-status cb-audit-status--${row.statusKind}`, text: row.status })),
    h("td", { text: row.approved }),
    h("td", { text: row.via }),
    h(
      "td",
      {},
      h(
        "details",
        { class: "cb-audit-details" },
        h("summary", {}, "Show", h("span", { class: "cb-sr", text: ` input and result of ${row.tool}, ${row.time}` })),
        h("div", { class: "cb-tool-body" }, input.el, result.el),
      ),
    ),
  );
}

export class ChatbotActivityTable {
  // Each entry's row, kept while the entry is listed: an open disclosure stays open as pages arrive.
  #rows = new WeakMap();

  /** `id` prefixes the ids inside; `onFilter(userId)`, `onLoadMore()` and `onRefresh()` are the user's actions. */
  constructor({ id, heading, onFilter, onLoadMore, onRefresh }) {
    this.heading = h("h2", { id: `${id}-heading`, class: "cb-activity-heading", text: heading });
    this.userInput = h("input", { id: `${id}-user`, type: "search", class: "cb-activity-input", placeholder: "All users", autocomplete: "off", list: `${id}-users` });
    this.users = h("datalist", { id: `${id}-users` });
    const filter = h(
      "form",
      { class: "cb-activity-filter", role: "search", "aria-label": "Filter the activity" },
      h("label", { for: `${id}-user`, text: "User" }),
      this.userInput,
      this.users,
      h("button", { type: "submit", class: "cb-activity-button" }, "Filter"),
    );
    filter.addEventListener("submit", (event) => {
      event.preventDefault();
      onFilter(this.userInput.value);
    });
    this.refresh = h("button", { type: "button", class: "cb-activity-button", onclick: onRefresh }, icon("retry"), "Refresh");
    this.status = h("p", { class: "cb-activity-status", role: "status" });
    this.body = h("tbody");
    this.table = h(
      "table",
      { class: "cb-activity-table", "aria-labelledby": `${id}-heading` },
      h("thead", {}, h("tr", {}, COLUMNS.map((name) => h("th", { scope: "col", text: name })))),
      this.body,
    );
    this.scroll = h("div", { class: "cb-activity-scroll", tabindex: "0", role: "region", "aria-label": `${heading}, table` }, this.table);
    this.retry = h("button", { type: "button", class: "cb-retry", onclick: onRefresh }, icon("retry"), "Try again");
    this.error = h("div", { class: "cb-error", role: "alert", hidden: true }, h("div", { class: "cb-error-text" }, h("strong", { text: "Couldn't load the activity" }), h("span", { text: "Check your connection and try again." })), this.retry);
    this.forbidden = h("p", { class: "cb-activity-forbidden", role: "alert", hidden: true, text: "Only owners and admins can see the activity." });
    this.more = h("button", { type: "button", class: "cb-activity-button cb-activity-more", hidden: true, onclick: onLoadMore }, "Load more");
    this.controls = h("div", { class: "cb-activity-controls" }, filter, this.refresh);
    this.el = h(
      "section",
      { class: "cb-activity", "aria-labelledby": `${id}-heading` },
      h("div", { class: "cb-activity-header" }, this.heading, this.controls),
      this.forbidden,
      this.status,
      this.scroll,
      this.error,
      this.more,
    );
  }

  /** Draws the ActivityController's state. */
  update({ items, nextCursor, loading, error, loaded, userId, forbidden }) {
    this.forbidden.hidden = !forbidden;
    this.controls.hidden = forbidden;
    const failed = Boolean(error) && !forbidden;
    this.error.hidden = !failed;
    this.scroll.hidden = forbidden || items.length === 0;
    this.#fill(items.map((entry) => this.#row(entry)));
    const empty = loaded && items.length === 0 && !failed && !forbidden;
    this.status.textContent = loading ? "Loading…" : empty ? (userId ? `No activity for ${userId}.` : "No activity yet.") : "";
    this.status.hidden = this.status.textContent === "";
    const root = this.el.getRootNode();
    const moreHadFocus = root.activeElement === this.more;
    // "Load more" stays put (inactive) while its page loads, so focus stays on it; with no page left it
    // goes, and focus moves to the table.
    this.more.hidden = !nextCursor || failed || forbidden;
    this.more.setAttribute("aria-disabled", String(Boolean(loading)));
    if (moreHadFocus && this.more.hidden) this.scroll.focus();
    this.el.setAttribute("aria-busy", String(Boolean(loading)));
    if (root.activeElement !== this.userInput) this.userInput.value = userId;
    const known = [...new Set(items.map((entry) => String(entry.user_id ?? "")).filter(Boolean))];
    this.users.replaceChildren(...known.map((user) => h("option", { value: user })));
  }

  // Rows already shown stay in place (a page only adds rows at the end), so focus and open disclosures
  // inside them survive.
  #fill(rows) {
    const shown = [...this.body.children];
    if (shown.every((row, index) => rows[index] === row)) this.body.append(...rows.slice(shown.length));
    else this.body.replaceChildren(...rows);
  }

  #row(entry) {
    let row = this.#rows.get(entry);
    if (!row) this.#rows.set(entry, (row = rowOf(entry)));
    return row;
  }
}
