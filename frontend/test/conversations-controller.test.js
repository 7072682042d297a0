import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../src/api.js";
import { writeBookmark } from "../src/bookmark.js";
import { ConversationsController } from "../src/controllers/conversations.js";
import { createChatStore } from "../src/store.js";

class MemoryStorage {
  items = new Map();
  getItem(key) {
    return this.items.get(key) ?? null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
}

const summary = (id, title = `Chat ${id}`) => ({ id, title, created_at: "2026-03-01T10:00:00Z", updated_at: "2026-03-01T10:00:00Z", awaiting_approval: false });

// The server's conversations (newest first) behind the list, rename and delete calls; the conversation
// controller is a fake that records what it was asked to open.
function setup({ conversations = [], known = conversations.map((c) => c.id) } = {}) {
  const storage = new MemoryStorage();
  const store = createChatStore({ storage });
  store.getState().loadUser("alice@acme");
  const asked = [];
  const api = {
    conversations: async ({ limit, cursor }) => {
      asked.push({ limit, cursor: cursor ?? null });
      const start = cursor ? Number(cursor) : 0;
      const page = conversations.slice(start, start + limit);
      return { conversations: page, next_cursor: start + limit < conversations.length ? String(start + limit) : null };
    },
    renameConversation: async (id, title) => ({ ...summary(id), title }),
    deleteConversation: async (id) => {
      if (!known.includes(id)) throw new ApiError(404, { error: "not_found" });
      return null;
    },
  };
  const opened = [];
  let newChats = 0;
  const conversation = {
    open: async (id) => {
      opened.push(id);
      if (!known.includes(id)) return false;
      store.getState().showConversation({ id, title: id, messages: [] });
      return true;
    },
    newChat: () => {
      newChats += 1;
      store.getState().clear();
    },
  };
  const controller = new ConversationsController({ store, api: () => api, conversation, storage });
  return { storage, store, api, asked, opened, controller, newChats: () => newChats, list: () => store.getState().conversations };
}

describe("conversations controller", () => {
  it("on sign-in, reopens the user's most recently updated conversation (a list of one, then that one)", async () => {
    const { controller, asked, opened } = setup({ conversations: [summary("c3"), summary("c2")] });
    await controller.restore();
    assert.deepEqual(asked, [{ limit: 1, cursor: null }]);
    assert.deepEqual(opened, ["c3"]);
  });

  it("after a reload, reopens the conversation this tab had on screen, or keeps the new chat it had started", async () => {
    const first = setup({ conversations: [summary("c3"), summary("c2")] });
    writeBookmark(first.storage, "alice@acme", "c2");
    await first.controller.restore();
    assert.deepEqual(first.opened, ["c2"]);
    assert.deepEqual(first.asked, []);

    const fresh = setup({ conversations: [summary("c3")] });
    writeBookmark(fresh.storage, "alice@acme", null);
    await fresh.controller.restore();
    assert.deepEqual(fresh.opened, []);
    assert.equal(fresh.store.getState().conversationId, null);
  });

  it("falls back to the most recent conversation when the bookmarked one is gone", async () => {
    const { controller, storage, opened } = setup({ conversations: [summary("c3")] });
    writeBookmark(storage, "alice@acme", "deleted");
    await controller.restore();
    assert.deepEqual(opened, ["deleted", "c3"]);
  });

  it("a user with no conversation yet gets a new chat", async () => {
    const { controller, opened, store } = setup();
    await controller.restore();
    assert.deepEqual(opened, []);
    assert.equal(store.getState().conversationId, null);
  });

  it("shows the list newest first, a page at a time", async () => {
    const many = Array.from({ length: 25 }, (_, i) => summary(`c${25 - i}`));
    const { controller, store, asked, list } = setup({ conversations: many });
    await controller.show();
    assert.equal(store.getState().view, "conversations");
    assert.equal(list().items.length, 20);
    assert.equal(list().items[0].id, "c25");
    await controller.loadMore();
    assert.equal(list().items.length, 25);
    assert.equal(list().nextCursor, null);
    assert.deepEqual(asked.map((a) => a.cursor), [null, "20"]);
  });

  it("opening one from the list shows it and goes back to the chat; the one on screen is just shown", async () => {
    const { controller, store, opened } = setup({ conversations: [summary("c2"), summary("c1")] });
    await controller.show();
    assert.equal(await controller.open("c1"), true);
    assert.deepEqual(opened, ["c1"]);
    assert.equal(store.getState().view, "chat");
    await controller.show();
    await controller.open("c1");
    assert.deepEqual(opened, ["c1"], "not loaded again");
    assert.equal(store.getState().view, "chat");
  });

  it("a conversation deleted elsewhere leaves the list when the user tries to open it", async () => {
    const { controller, store, list } = setup({ conversations: [summary("c2"), summary("c1")], known: ["c2"] });
    await controller.show();
    assert.equal(await controller.open("c1"), false);
    assert.deepEqual(list().items.map((c) => c.id), ["c2"]);
    assert.equal(store.getState().view, "conversations");
  });

  it("renames a conversation in the list with the title the server kept", async () => {
    const { controller, list } = setup({ conversations: [summary("c1", "Old")] });
    await controller.show();
    await controller.rename("c1", "Team admins");
    assert.equal(list().items[0].title, "Team admins");
  });

  it("deleting the conversation on screen drops it from the list and starts a new chat; another leaves the screen alone", async () => {
    const { controller, store, list, newChats } = setup({ conversations: [summary("c2"), summary("c1")] });
    store.getState().showConversation({ id: "c1", messages: [] });
    await controller.show();
    await controller.remove("c2");
    assert.equal(newChats(), 0);
    await controller.remove("c1");
    assert.deepEqual(list().items, []);
    assert.equal(newChats(), 1);
    assert.equal(store.getState().conversationId, null);
  });

  it("a delete the server refuses keeps the conversation listed and says why", async () => {
    const { controller, api, list } = setup({ conversations: [summary("c1")] });
    api.deleteConversation = async () => {
      throw new ApiError(503, { error: "unavailable", message: "Try later" });
    };
    await controller.show();
    await assert.rejects(controller.remove("c1"), /Try later/);
    assert.equal(list().items.length, 1);
  });
});
