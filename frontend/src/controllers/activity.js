// ActivityController: the organization's audit trail for <chatbot-activity>, newest first, a page at a
// time, optionally only one user's. Only owners and admins may read it: a 403 is an answer ("not for
// you"), not a failure to retry.
import { ApiError } from "../api.js";
import { PagedList } from "../paging.js";

const PAGE_SIZE = 25;

export class ActivityController {
  #api;
  #list;
  #userId = "";

  /** `api()` returns the current ChatApi (or null before there is one); `onChange(state)` hears every change. */
  constructor({ api, onChange = () => {} }) {
    this.#api = api;
    this.#list = new PagedList({
      fetchPage: async (cursor) => {
        const page = await this.#api().audit({ limit: PAGE_SIZE, cursor, userId: this.#userId || undefined });
        return { items: page?.entries ?? [], nextCursor: page?.next_cursor ?? null };
      },
      onChange: () => onChange(this.state),
    });
  }

  /**
   * The view's state: the list's (`items`, `nextCursor`, `loading`, `error`, `loaded`), the `userId`
   * filter, and `forbidden` when the caller may not see the activity.
   */
  get state() {
    const list = this.#list.state;
    const forbidden = list.error instanceof ApiError && list.error.status === 403;
    return { ...list, userId: this.#userId, forbidden };
  }

  /** Loads the newest entries again. */
  refresh() {
    return this.#list.reload();
  }

  /** Loads the next, older page. */
  loadMore() {
    return this.#list.loadMore();
  }

  /** Shows only the entries of `userId` (every user's when blank), newest first. */
  filter(userId) {
    this.choose(userId);
    return this.#list.reload();
  }

  /** Sets the user filter without loading (the next `refresh` applies it). */
  choose(userId) {
    this.#userId = String(userId ?? "").trim();
  }

  /** Forgets what was loaded (the signed-in user changed, or none is signed in). */
  reset() {
    this.#list.reset();
  }
}
