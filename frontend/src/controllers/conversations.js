// ConversationsController: the user's conversations as the server keeps them. It fills the Conversations
// view a page at a time, opens, renames and deletes conversations, and when a user signs in reopens the
// one they had on screen in this tab (the bookmark), else their most recently updated one.
import { ApiError } from "../api.js";
import { readBookmark } from "../bookmark.js";
import { PagedList } from "../paging.js";

const PAGE_SIZE = 20;

export class ConversationsController {
  #store;
  #api;
  #conversation;
  #storage;
  #list;

  /**
   * `store` is the chat store; `api()` returns the current ChatApi; `conversation` is the
   * ConversationController (it puts a conversation on screen); `storage` holds the bookmarks.
   */
  constructor({ store, api, conversation, storage = null }) {
    this.#store = store;
    this.#api = api;
    this.#conversation = conversation;
    this.#storage = storage;
    this.#list = new PagedList({
      fetchPage: async (cursor) => {
        const page = await this.#api().conversations({ limit: PAGE_SIZE, cursor });
        return { items: page?.conversations ?? [], nextCursor: page?.next_cursor ?? null };
      },
      onChange: (state) => this.#store.getState().setConversations(state),
      key: (item) => item.id,
    });
  }

  /** Shows the Conversations view, with the list loaded afresh. */
  show() {
    this.#store.getState().setView("conversations");
    return this.#list.reload();
  }

  /** Back to the conversation on screen. */
  hide() {
    this.#store.getState().setView("chat");
  }

  /** Loads the next page of the list (the reader scrolled to its end, or asked for more). */
  loadMore() {
    return this.#list.loadMore();
  }

  /**
   * Opens a conversation from the list and goes back to the chat; the one already on screen is simply
   * shown. Resolves false for a conversation gone meanwhile (deleted in another tab), which leaves the
   * list; throws when it could not be loaded.
   */
  async open(conversationId) {
    if (this.#store.getState().conversationId !== conversationId) {
      const shown = await this.#conversation.open(conversationId);
      if (!shown) {
        this.#list.update((items) => items.filter((item) => item.id !== conversationId));
        return false;
      }
    }
    this.hide();
    return true;
  }

  /** Renames a conversation (the title trimmed, 1 to 200 characters); throws when the server refuses. */
  async rename(conversationId, title) {
    const summary = await this.#api().renameConversation(conversationId, title);
    this.#list.update((items) => items.map((item) => (item.id === conversationId ? { ...item, ...summary } : item)));
  }

  /** Deletes a conversation; the one on screen gives way to a new chat. Throws when the server refuses. */
  async remove(conversationId) {
    try {
      await this.#api().deleteConversation(conversationId);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error; // already gone: as good as deleted
    }
    this.#list.update((items) => items.filter((item) => item.id !== conversationId));
    if (this.#store.getState().conversationId === conversationId) this.#conversation.newChat();
  }

  /**
   * A user signed in (the sheet got its first token, or another user's): reopens the conversation they
   * had on screen in this tab, a new chat if they had started one, else their most recently updated one.
   * A failure leaves a new chat on screen: the list still offers every conversation.
   */
  async restore() {
    const userKey = this.#store.getState().userKey;
    this.#list.reset();
    try {
      const bookmark = readBookmark(this.#storage, userKey);
      if (bookmark === "") return;
      if (bookmark && (await this.#conversation.open(bookmark))) return;
      const page = await this.#api().conversations({ limit: 1 });
      const latest = page?.conversations?.[0];
      // A user switch while the list was asked for: the new user's own restore decides.
      if (latest && this.#store.getState().userKey === userKey) await this.#conversation.open(latest.id);
    } catch {
      // Offline or refused: the user starts a new chat, and the list is there to reopen an older one.
    }
  }
}
