import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readBookmark } from "../src/bookmark.js";
import { createChatStore } from "../src/store.js";

class MemoryStorage {
  constructor() {
    this.items = new Map();
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

function setup() {
  const storage = new MemoryStorage();
  let n = 0;
  const store = createChatStore({ storage, now: () => 1000, newId: () => `id${++n}` });
  store.getState().loadUser("alice@acme");
  return { storage, store, state: () => store.getState() };
}

const ev = (type, data, id = null) => ({ type, data, id });
const text = (t, id = null) => ev("text", { text: t }, id);
const done = (id = null, stop_reason = "end_turn") => ev("done", { stop_reason, iterations: 1 }, id);
const usage = (id) => ev("usage", { input_tokens: 300, output_tokens: 40, cache_creation_input_tokens: 0, cache_read_input_tokens: 60 }, id);

describe("chat store", () => {
  it("runs a turn: user message, streaming reply, then done", () => {
    const { state } = setup();
    const id = state().startTurn("Hello");
    assert.equal(state().streamingId, id);
    state().applyEvent(id, text("Hi "));
    state().applyEvent(id, text("there"));
    state().applyEvent(id, done());
    const [question, answer] = state().messages;
    assert.equal(question.text, "Hello");
    assert.equal(answer.parts[0].text, "Hi there");
    assert.equal(answer.status, "done");
    assert.equal(state().streamingId, null);
  });

  it("takes the conversation's id and title from the stream's conversation event, and bookmarks it for this user", () => {
    const { storage, state } = setup();
    const id = state().startTurn("Who are the admins?");
    state().applyEvent(id, ev("conversation", { id: "c1", title: "Admins" }, 1));
    assert.equal(state().conversationId, "c1");
    assert.equal(state().title, "Admins");
    assert.equal(readBookmark(storage, "alice@acme"), "c1");
    assert.equal(readBookmark(storage, "bob@acme"), undefined);
  });

  it("replays without duplicates: events the reply already has are skipped whole, usage counted once", () => {
    const { state } = setup();
    state().setUsage({ used: 1000, limit: 50000, resetsAt: null });
    const id = state().startTurn("Q");
    const events = [ev("conversation", { id: "c1", title: "Q" }, 1), text("Hello ", 2), usage(3), text("wor", 4)];
    for (const event of events) state().applyEvent(id, event);
    // The re-attached stream repeats 3 and 4, then goes on.
    for (const event of [usage(3), text("wor", 4), text("ld.", 5), done(6)]) state().applyEvent(id, event);
    const reply = state().messages.at(-1);
    assert.equal(reply.parts[0].text, "Hello world.");
    assert.equal(reply.status, "done");
    assert.equal(state().usage.used, 1400);
  });

  it("a reply resumed for its next request (approvals) takes that request's events, numbered from 1 again", () => {
    const { state } = setup();
    const id = state().startTurn("Remove Bob");
    for (const event of [text("Sure.", 1), ev("tool_use", { id: "t1", name: "member_remove", input: {} }, 2), ev("approval_required", { id: "t1", summary: "Remove Bob" }, 3), done(4, "approval_required")]) state().applyEvent(id, event);
    assert.equal(state().messages.at(-1).status, "awaiting");
    assert.equal(state().streamingId, null);
    state().decide(id, "t1", true);
    state().resumeReply(id);
    assert.equal(state().streamingId, id);
    for (const event of [ev("tool_result", { id: "t1", is_error: false, content: "Removed" }, 1), text(" Done.", 2), done(3)]) state().applyEvent(id, event);
    const reply = state().messages.at(-1);
    assert.deepEqual(reply.parts.map((p) => (p.kind === "tool" ? p.status : p.text)), ["Sure.", "done", " Done."]);
    assert.equal(state().messages.length, 2);
  });

  it("refused decisions leave the calls waiting, undecided, with the reason", () => {
    const { state } = setup();
    const id = state().startTurn("Remove Bob");
    for (const event of [ev("tool_use", { id: "t1", name: "member_remove", input: {} }, 1), ev("approval_required", { id: "t1", summary: "Remove Bob" }, 2), done(3, "approval_required")]) state().applyEvent(id, event);
    state().decide(id, "t1", false);
    state().resumeReply(id);
    state().reopenApprovals(id, { kind: "invalid", title: "Not accepted", message: "Nothing waits" });
    const reply = state().messages.at(-1);
    assert.equal(reply.status, "awaiting");
    assert.equal(reply.parts[0].decision, null);
    assert.equal(reply.error.title, "Not accepted");
  });

  it("a new message declines the calls an earlier reply left waiting", () => {
    const { state } = setup();
    const id = state().startTurn("Remove Bob");
    for (const event of [ev("tool_use", { id: "t1", name: "member_remove", input: {} }, 1), ev("approval_required", { id: "t1", summary: "Remove Bob" }, 2), done(3, "approval_required")]) state().applyEvent(id, event);
    state().startTurn("Never mind");
    assert.equal(state().messages[1].parts[0].status, "declined");
    assert.equal(state().messages[1].status, "done");
  });

  it("shows a conversation as the server keeps it, and new chat forgets it (bookmarked as a new chat)", () => {
    const { storage, state } = setup();
    state().showConversation({ id: "c9", title: "Invitations", messages: [{ role: "user", content: "Show invitations" }, { role: "assistant", content: "One: gina.", tool_calls: [] }] });
    assert.equal(state().conversationId, "c9");
    assert.deepEqual(state().messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(readBookmark(storage, "alice@acme"), "c9");
    state().clear();
    assert.equal(state().conversationId, null);
    assert.deepEqual(state().messages, []);
    assert.equal(readBookmark(storage, "alice@acme"), "");
  });

  it("a user switch empties what was on screen and leaves the previous user's bookmark alone", () => {
    const { storage, state } = setup();
    state().showConversation({ id: "c9", title: "Mine", messages: [{ role: "user", content: "Hi" }] });
    state().setAccess({ role: "admin", permissions: ["member:read"] });
    state().loadUser("bob@acme");
    assert.equal(state().conversationId, null);
    assert.deepEqual(state().messages, []);
    assert.equal(state().permissions, null);
    assert.equal(readBookmark(storage, "alice@acme"), "c9");
    assert.equal(readBookmark(storage, "bob@acme"), undefined);
  });

  it("takes back a failed reply with its question so it can be sent again", () => {
    const { state } = setup();
    const id = state().startTurn("Try me");
    state().finish(id, "interrupted");
    assert.equal(state().takeBack(id), "Try me");
    assert.deepEqual(state().messages, []);
  });

  it("advances today's usage live from usage events", () => {
    const { state } = setup();
    state().setUsage({ used: 1000, limit: 50000, resetsAt: null });
    const id = state().startTurn("Q");
    state().applyEvent(id, usage(null));
    assert.equal(state().usage.used, 1400);
  });
});
