// PagedList: a list the server hands out a page at a time (`next_cursor`), newest first. It loads the
// first page, appends the next on request, and drops a page that arrives after the list was reloaded
// (a filter changed, the user switched), so a slow answer never lands in the wrong list.

export class PagedList {
  #fetchPage;
  #onChange;
  #key;
  #generation = 0;

  /**
   * `fetchPage(cursor)` resolves with `{items, nextCursor}` (cursor null for the first page);
   * `onChange(state)` hears every change; `key(item)` names an item, so one already listed (the list
   * moved between two pages) is not listed twice.
   */
  constructor({ fetchPage, onChange = () => {}, key = null }) {
    this.#fetchPage = fetchPage;
    this.#onChange = onChange;
    this.#key = key;
    this.state = { items: [], nextCursor: null, loading: false, error: null, loaded: false };
  }

  /** Loads the first page again, replacing what was listed once it arrives. */
  reload() {
    this.#generation += 1;
    return this.#load(null, false);
  }

  /** Appends the next page, if there is one and no page is loading. */
  loadMore() {
    const { nextCursor, loading, loaded } = this.state;
    if (!loaded || loading || !nextCursor) return Promise.resolve();
    return this.#load(nextCursor, true);
  }

  /** Empties the list (nothing is loaded until the next `reload`), and ignores pages still on their way. */
  reset() {
    this.#generation += 1;
    this.#set({ items: [], nextCursor: null, loading: false, error: null, loaded: false });
  }

  /** Changes the listed items in place (`change(items)` returns the new array): a rename, a deletion. */
  update(change) {
    this.#set({ items: change(this.state.items) });
  }

  async #load(cursor, append) {
    const generation = this.#generation;
    this.#set({ loading: true, error: null });
    try {
      const page = await this.#fetchPage(cursor);
      if (generation !== this.#generation) return;
      const items = append ? this.#merge(this.state.items, page.items) : [...page.items];
      this.#set({ items, nextCursor: page.nextCursor ?? null, loading: false, loaded: true });
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#set({ loading: false, error });
    }
  }

  #merge(items, more) {
    if (!this.#key) return [...items, ...more];
    const seen = new Set(items.map(this.#key));
    return [...items, ...more.filter((item) => !seen.has(this.#key(item)))];
  }

  #set(patch) {
    this.state = { ...this.state, ...patch };
    this.#onChange(this.state);
  }
}
