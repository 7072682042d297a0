// ChatbotConversationList: the Conversations view — the user's chats, most recently updated first, a page
// at a time ("Load more", or scrolling to the end). Each can be opened, renamed in place (Enter saves, Esc
// cancels) and deleted after a confirmation. Esc elsewhere in the view goes back to the chat.
import { h, icon } from "../dom.js";
import { formatLocalTime } from "../format.js";

const TITLE_MAX = 200;
// Within this many pixels of the end of the list, the next page is loaded.
const LOAD_AHEAD = 120;

function titleOf(item) {
  return item.title?.trim() || "Untitled conversation";
}

// Stops an Esc from reaching the view (or the sheet) once it has been handled here.
function onEscape(handler) {
  return (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    event.preventDefault();
    handler();
  };
}

class ConversationRow {
  constructor({ onOpen, onRename, onDelete }) {
    this.item = null;
    this.current = null;
    this.onRename = onRename;
    this.onDelete = onDelete;
    this.title = h("span", { class: "cb-conv-title" });
    this.time = h("time");
    this.badge = h("span", { class: "cb-conv-badge", text: "Waiting for approval" });
    this.open = h("button", { type: "button", class: "cb-conv-open", onclick: () => onOpen(this.item.id) }, this.title, h("span", { class: "cb-conv-meta" }, this.time, this.badge));
    this.rename = h("button", { type: "button", class: "cb-icon-button", title: "Rename", onclick: () => this.#setMode("rename") }, icon("pencil"));
    this.remove = h("button", { type: "button", class: "cb-icon-button", title: "Delete", onclick: () => this.#setMode("confirm") }, icon("trash"));
    this.row = h("div", { class: "cb-conv-row" }, this.open, this.rename, this.remove);
    this.el = h("li", { class: "cb-conv" }, this.row);
  }

  /** Draws `item` (a conversation summary); `current` when it is the conversation on screen. */
  update(item, current) {
    if (item === this.item && current === this.current) return;
    this.item = item;
    this.current = current;
    const title = titleOf(item);
    this.title.textContent = title;
    this.time.dateTime = item.updated_at ?? "";
    this.time.textContent = formatLocalTime(item.updated_at);
    this.badge.hidden = !item.awaiting_approval;
    if (current) this.open.setAttribute("aria-current", "true");
    else this.open.removeAttribute("aria-current");
    this.rename.setAttribute("aria-label", `Rename “${title}”`);
    this.remove.setAttribute("aria-label", `Delete “${title}”`);
  }

  #renderRename() {
    const title = titleOf(this.item);
    const input = h("input", { type: "text", class: "cb-conv-input", value: this.item.title ?? "", maxlength: String(TITLE_MAX), required: true, "aria-label": `New title for “${title}”` });
    const error = h("p", { class: "cb-conv-error", role: "alert", hidden: true });
    const save = h("button", { type: "submit", class: "cb-conv-action cb-conv-action--primary" }, "Save");
    const form = h(
      "form",
      { class: "cb-conv-form", onkeydown: onEscape(() => this.#setMode("view", this.rename)) },
      input,
      h("div", { class: "cb-conv-actions" }, save, h("button", { type: "button", class: "cb-conv-action", onclick: () => this.#setMode("view", this.rename) }, "Cancel")),
      error,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const next = input.value.trim();
      if (!next) return input.focus();
      if (next === (this.item.title ?? "")) return this.#setMode("view", this.rename);
      save.disabled = input.disabled = true;
      try {
        await this.onRename(this.item.id, next);
        this.#setMode("view", this.rename);
      } catch (failure) {
        save.disabled = input.disabled = false;
        error.textContent = `Couldn't rename it: ${failure?.message ?? "try again"}`;
        error.hidden = false;
        input.focus();
      }
    });
    this.el.replaceChildren(form);
    input.focus();
    input.select();
  }

  #renderConfirm() {
    const title = titleOf(this.item);
    const error = h("p", { class: "cb-conv-error", role: "alert", hidden: true });
    const cancel = h("button", { type: "button", class: "cb-conv-action", onclick: () => this.#setMode("view", this.remove) }, "Cancel");
    const confirm = h("button", { type: "button", class: "cb-conv-action cb-conv-action--danger" }, "Delete");
    confirm.addEventListener("click", async () => {
      confirm.disabled = cancel.disabled = true;
      try {
        await this.onDelete(this.item.id); // the list drops the row
      } catch (failure) {
        confirm.disabled = cancel.disabled = false;
        error.textContent = `Couldn't delete it: ${failure?.message ?? "try again"}`;
        error.hidden = false;
        cancel.focus();
      }
    });
    const question = h("p", { class: "cb-conv-question" }, "Delete ", h("strong", { text: `“${title}”` }), "? This can't be undone.");
    this.el.replaceChildren(h("div", { class: "cb-conv-confirm", role: "group", "aria-label": `Delete “${title}”`, onkeydown: onEscape(() => this.#setMode("view", this.remove)) }, question, h("div", { class: "cb-conv-actions" }, confirm, cancel), error));
    cancel.focus();
  }

  // Back from renaming or confirming, focus returns to the button that started it.
  #setMode(mode, returnTo = null) {
    if (mode === "rename") return this.#renderRename();
    if (mode === "confirm") return this.#renderConfirm();
    this.el.replaceChildren(this.row);
    returnTo?.focus();
  }
}

export class ChatbotConversationList {
  /**
   * `onOpen(id)`, `onRename(id, title)` and `onDelete(id)` (the last two return promises that reject
   * when the server refuses), `onLoadMore()`, `onReload()` (after a failure) and `onBack()` are the
   * user's actions (New chat is in the sheet's header).
   */
  constructor({ id, onOpen, onRename, onDelete, onLoadMore, onReload, onBack }) {
    this.rows = new Map();
    this.callbacks = { onOpen, onRename, onDelete };
    this.heading = h("h3", { id: `${id}-heading`, class: "cb-conv-heading", tabindex: "-1", text: "Conversations" });
    this.list = h("ul", { class: "cb-conv-list", "aria-labelledby": `${id}-heading` });
    this.status = h("p", { class: "cb-conv-status", role: "status" });
    this.retry = h("button", { type: "button", class: "cb-retry", onclick: () => onReload() }, icon("retry"), "Try again");
    this.error = h("div", { class: "cb-error", role: "alert", hidden: true }, h("div", { class: "cb-error-text" }, h("strong", { text: "Couldn't load your conversations" }), h("span", { text: "Check your connection and try again." })), this.retry);
    this.more = h("button", { type: "button", class: "cb-conv-more", hidden: true, onclick: () => onLoadMore() }, "Load more");
    this.notice = h("p", { class: "cb-conv-error", role: "alert", hidden: true });
    this.el = h(
      "section",
      { id, class: "cb-conversations", "aria-labelledby": `${id}-heading`, hidden: true, onkeydown: onEscape(onBack) },
      h(
        "div",
        { class: "cb-conv-header" },
        h("button", { type: "button", class: "cb-icon-button", "aria-label": "Back to chat", title: "Back to chat", onclick: onBack }, icon("back")),
        this.heading,
      ),
      this.notice,
      h("div", { class: "cb-conv-scroller" }, this.list, this.status, this.error, this.more),
    );
    this.scroller = this.el.lastElementChild;
    this.scroller.addEventListener("scroll", () => {
      const rest = this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
      if (rest < LOAD_AHEAD && !this.more.hidden) onLoadMore();
    }, { passive: true });
  }

  /** Draws the list's state (a PagedList's: items, nextCursor, loading, error, loaded); `currentId` is on screen. */
  update({ list, currentId, visible }) {
    this.el.hidden = !visible;
    const ids = new Set(list.items.map((item) => item.id));
    const active = this.el.getRootNode().activeElement;
    let refocus = null;
    for (const [id, row] of this.rows) {
      if (ids.has(id)) continue;
      if (active && row.el.contains(active)) refocus = [...this.list.children].indexOf(row.el);
      row.el.remove();
      this.rows.delete(id);
    }
    let previous = null;
    for (const item of list.items) {
      let row = this.rows.get(item.id);
      if (!row) {
        row = new ConversationRow(this.callbacks);
        this.rows.set(item.id, row);
      }
      // In list order (a reload may have moved a conversation up); a row in place is not touched.
      const place = previous ? previous.el.nextElementSibling : this.list.firstElementChild;
      if (place !== row.el) {
        if (previous) previous.el.after(row.el);
        else this.list.prepend(row.el);
      }
      row.update(item, item.id === currentId);
      previous = row;
    }
    // A deleted row had focus: it goes to the row that took its place (or the one before), else the heading.
    if (refocus !== null) {
      const next = this.list.children[Math.min(refocus, this.list.children.length - 1)];
      (next?.querySelector("button") ?? this.heading).focus();
    }
    const failed = list.error !== null && list.error !== undefined;
    this.error.hidden = !failed;
    this.status.textContent = list.loading ? "Loading…" : list.loaded && list.items.length === 0 && !failed ? "No conversations yet." : "";
    this.status.hidden = this.status.textContent === "";
    // "Load more" stays put (inactive) while its page loads, so focus stays on it; with no page left it
    // goes, and focus moves to the last conversation.
    const moreHadFocus = active === this.more;
    this.more.hidden = !list.nextCursor || failed;
    this.more.setAttribute("aria-disabled", String(Boolean(list.loading)));
    if (moreHadFocus && this.more.hidden) (this.list.lastElementChild?.querySelector("button") ?? this.heading).focus();
    this.el.setAttribute("aria-busy", String(Boolean(list.loading)));
  }

  /** Moves focus to the view's heading (the view was just opened), and clears an old notice. */
  focus() {
    this.say(null);
    this.heading.focus();
  }

  /** Says what went wrong with the user's last action (null clears it). */
  say(text) {
    this.notice.textContent = text ?? "";
    this.notice.hidden = !text;
  }
}
