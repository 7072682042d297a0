import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createChatStore } from "../src/store.js";

class MemoryStorage {
  constructor() {
    this.items = new Map();
    this.writes = 0;
  }
  getItem(key) {
    return this.items.has(key) ? this.items.get(key) : null;
  }
  setItem(key, value) {
    this.writes++;
    this.items.set(key, String(value));
  }
  removeItem(key) {
    this.items.delete(key);
  }
}

function setup() {
  const storage = new MemoryStorage();
  let time = 1000;
  let n = 0;
  const store = createChatStore({ storage, now: () => time, newId: () => `id${++n}` });
  return { storage, store, tick: (ms) => (time += ms) };
}

const text = (t) => ({ type: "text", data: { text: t } });
const done = { type: "done", data: { stop_reason: "end_turn", iterations: 1 } };

describe("chat store", () => {
  it("runs a turn: user message, streaming reply, then done", () => {
    const { store } = setup();
    store.getState().loadUser("alice@acme");
    const id = store.getState().startTurn("Hello");
    assert.equal(store.getState().streamingId, id);
    store.getState().applyEvent(id, text("Hi "));
    store.getState().applyEvent(id, text("there"));
    store.getState().applyEvent(id, done);
    const [question, answer] = store.getState().messages;
    assert.equal(question.text, "Hello");
    assert.equal(answer.parts[0].text, "Hi there");
    assert.equal(answer.status, "done");
    assert.equal(store.getState().streamingId, null);
  });

  it("keeps each user's conversation apart across a reload", () => {
    const { storage, store } = setup();
    store.getState().loadUser("alice@acme");
    const id = store.getState().startTurn("Alice asks");
    store.getState().applyEvent(id, done);
    store.getState().loadUser("bob@acme");
    assert.deepEqual(store.getState().messages, []);

    const reloaded = createChatStore({ storage });
    reloaded.getState().loadUser("alice@acme");
    assert.equal(reloaded.getState().messages[0].text, "Alice asks");
    reloaded.getState().loadUser("bob@acme");
    assert.deepEqual(reloaded.getState().messages, []);
  });

  it("throttles storage writes while streaming but always saves the finished reply", () => {
    const { storage, store, tick } = setup();
    store.getState().loadUser("alice@acme");
    const id = store.getState().startTurn("Q");
    const before = storage.writes;
    for (let i = 0; i < 50; i++) store.getState().applyEvent(id, text("x"));
    assert.ok(storage.writes - before <= 1, `wrote ${storage.writes - before} times for 50 chunks`);
    tick(500);
    store.getState().applyEvent(id, text("y"));
    store.getState().applyEvent(id, done);
    const saved = JSON.parse(storage.getItem("chatbot:conversation:alice@acme"));
    assert.equal(saved[1].parts[0].text, `${"x".repeat(50)}y`);
    assert.equal(saved[1].status, "done");
  });

  it("restores a reply that was streaming at reload as interrupted", () => {
    const { storage, store, tick } = setup();
    store.getState().loadUser("alice@acme");
    const id = store.getState().startTurn("Q");
    tick(1000);
    store.getState().applyEvent(id, text("partial"));
    const reloaded = createChatStore({ storage });
    reloaded.getState().loadUser("alice@acme");
    assert.equal(reloaded.getState().messages[1].status, "interrupted");
    assert.equal(reloaded.getState().messages[1].parts[0].text, "partial");
  });

  it("new chat clears the conversation and its stored copy", () => {
    const { storage, store } = setup();
    store.getState().loadUser("alice@acme");
    const id = store.getState().startTurn("Q");
    store.getState().applyEvent(id, done);
    store.getState().clear();
    assert.deepEqual(store.getState().messages, []);
    assert.equal(storage.getItem("chatbot:conversation:alice@acme"), null);
  });

  it("takes back a failed reply with its question so it can be sent again", () => {
    const { store } = setup();
    store.getState().loadUser("alice@acme");
    const id = store.getState().startTurn("Try me");
    store.getState().finish(id, "interrupted");
    assert.equal(store.getState().takeBack(id), "Try me");
    assert.deepEqual(store.getState().messages, []);
  });

  it("advances today's usage live from usage events", () => {
    const { store } = setup();
    store.getState().loadUser("alice@acme");
    store.getState().setUsage({ used: 1000, limit: 50000, resetsAt: null });
    const id = store.getState().startTurn("Q");
    store.getState().applyEvent(id, { type: "usage", data: { input_tokens: 300, output_tokens: 40, cache_creation_input_tokens: 0, cache_read_input_tokens: 60 } });
    assert.equal(store.getState().usage.used, 1400);
  });

  it("survives unreadable stored data", () => {
    const { storage, store } = setup();
    storage.setItem("chatbot:conversation:alice@acme", "{not json");
    store.getState().loadUser("alice@acme");
    assert.deepEqual(store.getState().messages, []);
  });
});
