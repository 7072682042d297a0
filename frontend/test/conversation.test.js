import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  MAX_HISTORY_TURNS,
  applyStreamEvent,
  assistantMessage,
  assistantText,
  countedTokens,
  finishMessage,
  restoreMessages,
  toHistory,
  userMessage,
} from "../src/conversation.js";

const ev = (type, data) => ({ type, data: { type, ...data } });

function replay(events) {
  return events.reduce(applyStreamEvent, assistantMessage("a1", 0));
}

describe("conversation", () => {
  it("appends text chunks in order and splits text around tool calls", () => {
    const reply = replay([
      ev("text", { text: "Let me " }),
      ev("text", { text: "check." }),
      ev("tool_use", { id: "t1", name: "member_list", input: { role: "admin" } }),
      ev("tool_result", { id: "t1", name: "member_list", is_error: false, content: "[]" }),
      ev("text", { text: "No admins." }),
      ev("done", { stop_reason: "end_turn", iterations: 2 }),
    ]);
    assert.equal(reply.status, "done");
    assert.deepEqual(reply.parts.map((p) => p.kind), ["text", "tool", "text"]);
    assert.equal(reply.parts[0].text, "Let me check.");
    assert.deepEqual(reply.parts[1], { kind: "tool", id: "t1", name: "member_list", input: { role: "admin" }, status: "done", result: "[]" });
    assert.equal(assistantText(reply), "Let me check.No admins.");
  });

  it("marks a failed tool call as an error", () => {
    const reply = replay([
      ev("tool_use", { id: "t1", name: "member_remove", input: { user_id: "u" } }),
      ev("tool_result", { id: "t1", name: "member_remove", is_error: true, content: "You cannot remove yourself" }),
    ]);
    assert.equal(reply.parts[0].status, "error");
    assert.equal(reply.parts[0].result, "You cannot remove yourself");
  });

  it("treats done/cancelled as stopped and settles tools still running", () => {
    const reply = replay([ev("tool_use", { id: "t1", name: "member_list", input: {} }), ev("done", { stop_reason: "cancelled", iterations: 1 })]);
    assert.equal(reply.status, "stopped");
    assert.equal(reply.parts[0].status, "stopped");
  });

  it("keeps the text that arrived before an error event", () => {
    const reply = replay([ev("text", { text: "Partial" }), ev("error", { code: "upstream_overloaded", message: "Overloaded" })]);
    assert.equal(reply.status, "error");
    assert.deepEqual(reply.error, { code: "upstream_overloaded", message: "Overloaded" });
    assert.equal(assistantText(reply), "Partial");
  });

  it("finishes a streaming reply from the client side once, keeping its text", () => {
    const streaming = replay([ev("text", { text: "Half" })]);
    const stopped = finishMessage(streaming, "stopped");
    assert.equal(stopped.status, "stopped");
    assert.equal(assistantText(stopped), "Half");
    assert.equal(finishMessage(stopped, "interrupted"), stopped);
  });

  it("builds history from completed pairs, skipping replies without text", () => {
    const done = (id, text) => ({ ...replay([ev("text", { text }), ev("done", { stop_reason: "end_turn" })]), id });
    const failed = { ...finishMessage(assistantMessage("a2", 0), "error", { code: "x" }) };
    const messages = [
      userMessage("u1", "Hi", 0),
      done("a1", "Hello!"),
      userMessage("u2", "Who is here?", 0),
      failed,
      userMessage("u3", "Again", 0),
      { ...finishMessage(replay([ev("text", { text: "Partial answer" })]), "stopped"), id: "a3" },
      userMessage("u4", "Now", 0),
      assistantMessage("a4", 0),
    ];
    assert.deepEqual(toHistory(messages), [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello!" },
      { role: "user", content: "Again" },
      { role: "assistant", content: "Partial answer" },
    ]);
  });

  it("keeps only the most recent turns, still starting with the user", () => {
    const messages = [];
    for (let i = 0; i < 30; i++) {
      messages.push(userMessage(`u${i}`, `q${i}`, 0), { ...replay([ev("text", { text: `a${i}` }), ev("done", {})]), id: `a${i}` });
    }
    const history = toHistory(messages);
    assert.equal(history.length, MAX_HISTORY_TURNS);
    assert.equal(history[0].role, "user");
    assert.equal(history[0].content, "q10");
    assert.equal(history.at(-1).content, "a29");
  });

  it("restores stored messages, marking a reply cut off by a reload as interrupted", () => {
    const restored = restoreMessages([userMessage("u1", "Hi", 0), replay([ev("text", { text: "Hel" })]), { junk: true }]);
    assert.equal(restored.length, 2);
    assert.equal(restored[1].status, "interrupted");
    assert.deepEqual(restoreMessages("nonsense"), []);
  });

  it("counts tokens the way the quotas do", () => {
    assert.equal(countedTokens({ input_tokens: 100, output_tokens: 20, cache_creation_input_tokens: 5, cache_read_input_tokens: 7 }), 132);
  });
});
