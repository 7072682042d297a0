// The chat's state (Zustand vanilla store): the signed-in user's conversation on screen (the server keeps
// it; the store holds what is shown), the list of their conversations, today's usage and what their role
// may do, and whether the assistant is on. The id of the conversation on screen is bookmarked per user
// (sessionStorage), so a reload reopens it.
import { createStore } from "zustand/vanilla";
import { forgetDecisions, recordDecision } from "./approvals.js";
import { writeBookmark } from "./bookmark.js";
import {
  applyStreamEvent,
  assistantMessage,
  countedTokens,
  declineWaiting,
  finishMessage,
  fromServerMessages,
  isNewEvent,
  resumeMessage,
  userMessage,
} from "./conversation.js";

function randomId() {
  return globalThis.crypto?.randomUUID?.() ?? `m${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
}

const EMPTY_LIST = { items: [], nextCursor: null, loading: false, error: null, loaded: false };

/**
 * Creates the store. `storage` is a Web Storage for the bookmark (sessionStorage in the browser; a fake
 * or null in tests), `now` a clock in milliseconds and `newId` an id factory, both injectable for tests.
 */
export function createChatStore({ storage = null, now = () => Date.now(), newId = randomId } = {}) {
  const store = createStore((set, get) => ({
    userKey: null,
    conversationId: null, // null: a new chat, created on the server by its first message
    title: null,
    messages: [],
    // The reply being filled; whether a reply is in flight ("busy") is the conversation controller's to
    // say (it spans more than this reply's stream).
    streamingId: null,
    conversations: EMPTY_LIST, // the Conversations view's list (a PagedList's state)
    view: "chat", // or "conversations"
    usage: null, // {used, limit, resetsAt} of the user tier
    role: null,
    permissions: null, // ["resource:action", ...] of the caller; null = not known yet
    enabled: null, // null = not known yet
    open: false,

    /** Switches to another user: nothing of the previous user's stays on screen. */
    loadUser(userKey) {
      if (get().userKey === userKey) return;
      set({ userKey, conversationId: null, title: null, messages: [], streamingId: null, conversations: EMPTY_LIST, view: "chat", usage: null, role: null, permissions: null });
    },

    /** Shows a conversation as the server keeps it (`GET /conversations/{id}`). */
    showConversation(detail) {
      const messages = fromServerMessages(detail.messages, newId, now(), Boolean(detail.active_request));
      set({ conversationId: String(detail.id), title: detail.title ?? null, messages, streamingId: null });
    },

    /**
     * Adds the user's message and an empty assistant reply; returns the reply's id. Calls still waiting
     * in an earlier reply are declined by the server when a new message comes, and show so.
     */
    startTurn(text) {
      const time = now();
      const reply = assistantMessage(newId(), time);
      set((state) => ({
        messages: [...state.messages.map(declineWaiting), userMessage(newId(), text, time), reply],
        streamingId: reply.id,
      }));
      return reply.id;
    },

    /** Adds an empty assistant reply without a question (the answer to one the server already has). */
    startReply() {
      const reply = assistantMessage(newId(), now());
      set((state) => ({ messages: [...state.messages, reply], streamingId: reply.id }));
      return reply.id;
    },

    /** Makes the reply `id` stream again: the next request's events (approvals, a re-attach) go into it. */
    resumeReply(id) {
      set((state) => ({ ...updateMessage(state, id, resumeMessage), streamingId: id }));
    },

    /**
     * Applies a stream event to the reply `id`. An event the reply already has (a replay) is skipped
     * whole; `usage` events also advance today's counter, `conversation` names the conversation.
     */
    applyEvent(id, event) {
      const reply = get().messages.find((m) => m.id === id);
      if (!reply || !isNewEvent(reply, event)) return;
      const patch = {};
      const usage = get().usage;
      if (event.type === "usage" && usage) patch.usage = { ...usage, used: usage.used + countedTokens(event.data) };
      if (event.type === "conversation" && event.data.id) {
        patch.conversationId = String(event.data.id);
        patch.title = event.data.title ?? null;
      }
      set((state) => ({ ...patch, ...updateMessage(state, id, (m) => applyStreamEvent(m, event)) }));
    },

    /** Records the user's decision on one waiting call of the reply `id`. */
    decide(id, callId, approved) {
      set((state) => updateMessage(state, id, (m) => recordDecision(m, callId, approved)));
    },

    /** The server refused the decisions (`error` says why): the calls wait again, undecided. */
    reopenApprovals(id, error) {
      set((state) => updateMessage(state, id, (m) => ({ ...forgetDecisions(m), status: "awaiting", error })));
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

    /** Starts a new chat: the next message creates a conversation on the server. */
    clear() {
      set({ conversationId: null, title: null, messages: [], streamingId: null });
    },

    setConversations(conversations) {
      set({ conversations });
    },
    setView(view) {
      set({ view });
    },
    setUsage(usage) {
      set({ usage });
    },
    /** What the caller's role may do: `role` and its `permissions` ("resource:action"). */
    setAccess({ role, permissions }) {
      set({ role: role ?? null, permissions: Array.isArray(permissions) ? permissions.map(String) : null });
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

  // The bookmark follows the conversation on screen (a user switch is not a change of conversation).
  store.subscribe((state, previous) => {
    if (state.userKey && state.userKey === previous.userKey && state.conversationId !== previous.conversationId) {
      writeBookmark(storage, state.userKey, state.conversationId);
    }
  });

  return store;
}
