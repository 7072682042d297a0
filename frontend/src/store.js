// The chat's state (Zustand vanilla store): the conversation of the signed-in user, kept in
// sessionStorage per user so a reload keeps it, plus today's usage and whether the assistant is on.
import { createStore } from "zustand/vanilla";
import {
  applyStreamEvent,
  assistantMessage,
  countedTokens,
  finishMessage,
  restoreMessages,
  userMessage,
} from "./conversation.js";

const STORAGE_PREFIX = "chatbot:conversation:";
// While a reply streams, storage is written at most this often (every chunk would be wasteful).
const SAVE_INTERVAL_MS = 400;

function randomId() {
  return globalThis.crypto?.randomUUID?.() ?? `m${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
}

/**
 * Creates the store. `storage` is a Web Storage (sessionStorage in the browser; a fake in tests),
 * `now` a clock in milliseconds and `newId` an id factory, both injectable for tests.
 */
export function createChatStore({ storage = null, now = () => Date.now(), newId = randomId } = {}) {
  let lastSave = 0;

  const store = createStore((set, get) => ({
    userKey: null,
    messages: [],
    // The reply being filled, which decides when to save; whether a reply is in flight ("busy") is
    // the conversation controller's to say (it spans more than this reply's stream).
    streamingId: null,
    usage: null, // {used, limit, resetsAt} of the user tier
    enabled: null, // null = not known yet
    open: false,

    /** Switches to a user's conversation (loaded from storage); a no-op for the current user. */
    loadUser(userKey) {
      if (get().userKey === userKey) return;
      let messages = [];
      if (storage && userKey) {
        try {
          messages = restoreMessages(JSON.parse(storage.getItem(STORAGE_PREFIX + userKey) ?? "[]"));
        } catch {
          messages = []; // unreadable (hand-edited or an old format): start afresh
        }
      }
      set({ userKey, messages, streamingId: null, usage: null });
    },

    /** Adds the user's message and an empty assistant reply; returns the reply's id. */
    startTurn(text) {
      const time = now();
      const reply = assistantMessage(newId(), time);
      set((state) => ({
        messages: [...state.messages, userMessage(newId(), text, time), reply],
        streamingId: reply.id,
      }));
      return reply.id;
    },

    /** Applies a stream event to the reply `id`; `usage` events advance today's counter live. */
    applyEvent(id, event) {
      if (event.type === "usage") {
        const usage = get().usage;
        if (usage) set({ usage: { ...usage, used: usage.used + countedTokens(event.data) } });
        return;
      }
      set((state) => updateMessage(state, id, (m) => applyStreamEvent(m, event)));
    },

    /** Ends the reply `id` from the client side (`stopped`, `interrupted` or `error`). */
    finish(id, status, error = null) {
      set((state) => updateMessage(state, id, (m) => finishMessage(m, status, error)));
    },

    /** Removes the reply `id` and the question before it (to send that question again); returns its text. */
    takeBack(id) {
      const messages = get().messages;
      const index = messages.findIndex((m) => m.id === id);
      if (index < 1 || messages[index - 1].role !== "user") return null;
      const question = messages[index - 1].text;
      set({ messages: [...messages.slice(0, index - 1), ...messages.slice(index + 1)] });
      return question;
    },

    /** Starts a new chat. */
    clear() {
      set({ messages: [], streamingId: null });
    },

    setUsage(usage) {
      set({ usage });
    },
    setEnabled(enabled) {
      set({ enabled });
    },
    setOpen(open) {
      set({ open });
    },
  }));

  function updateMessage(state, id, change) {
    const messages = state.messages.map((m) => (m.id === id ? change(m) : m));
    const reply = messages.find((m) => m.id === id);
    const streamingId = reply && reply.status === "streaming" ? state.streamingId : state.streamingId === id ? null : state.streamingId;
    return { messages, streamingId };
  }

  function save(state) {
    if (!storage || !state.userKey) return;
    try {
      if (state.messages.length === 0) storage.removeItem(STORAGE_PREFIX + state.userKey);
      else storage.setItem(STORAGE_PREFIX + state.userKey, JSON.stringify(state.messages));
      lastSave = now();
    } catch {
      // Storage full or denied (private mode): the chat still works, it just won't survive a reload.
    }
  }

  store.subscribe((state, previous) => {
    if (state.messages === previous.messages || state.userKey !== previous.userKey) return;
    const finished = state.streamingId === null;
    if (finished || now() - lastSave >= SAVE_INTERVAL_MS) save(state);
  });

  return store;
}
