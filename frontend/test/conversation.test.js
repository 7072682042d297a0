import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  applyStreamEvent,
  assistantMessage,
  assistantText,
  countedTokens,
  declineWaiting,
  finishMessage,
  continuesReply,
  fromServerMessages,
  resumeMessage,
  waitingCalls,
} from "../src/conversation.js";

const ev = (type, data, id = null) => ({ type, data: { type, ...data }, id });

function replay(events, start = assistantMessage("a1", 0)) {
  return events.reduce(applyStreamEvent, start);
}

// A reply that stopped for the user's approval of two calls.
const AWAITING = [
  ev("conversation", { id: "c1", title: "Cleanup" }, 1),
  ev("text", { text: "I'll remove them." }, 2),
  ev("tool_use", { id: "t1", name: "member_remove", input: { email: "bob@acme.test" } }, 3),
  ev("tool_use", { id: "t2", name: "invitation_cancel", input: { email: "gina@acme.test" } }, 4),
  ev("approval_required", { id: "t1", name: "member_remove", input: {}, summary: "Remove Bob Brown (bob@acme.test) from Acme Inc" }, 5),
  ev("approval_required", { id: "t2", name: "invitation_cancel", input: {}, summary: "Cancel the invitation of gina@acme.test" }, 6),
  ev("done", { stop_reason: "approval_required", iterations: 1 }, 7),
];

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
    assert.deepEqual(reply.parts[1], { kind: "tool", id: "t1", name: "member_list", input: { role: "admin" }, status: "done", result: "[]", summary: null, decision: null });
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

  it("applies each numbered event once: a replay of events it already has changes nothing", () => {
    const first = replay([ev("text", { text: "Hello " }, 1), ev("text", { text: "wor" }, 2)]);
    assert.equal(first.lastEventId, 2);
    // The re-attached stream starts again at an event already applied (1, 2), then goes on.
    const resumed = replay([ev("text", { text: "Hello " }, 1), ev("text", { text: "wor" }, 2), ev("text", { text: "ld." }, 3), ev("done", { stop_reason: "end_turn" }, 4)], first);
    assert.equal(assistantText(resumed), "Hello world.");
    assert.equal(resumed.lastEventId, 4);
    assert.equal(resumed.status, "done");
  });

  it("does not list a tool call twice when its tool_use is replayed without an id", () => {
    const use = ev("tool_use", { id: "t1", name: "member_list", input: {} });
    assert.equal(replay([use, use]).parts.length, 1);
  });

  it("a reply stopped for approval waits with a card per call, each with its summary", () => {
    const reply = replay(AWAITING);
    assert.equal(reply.status, "awaiting");
    assert.equal(reply.stopReason, "approval_required");
    assert.deepEqual(waitingCalls(reply).map((p) => [p.id, p.summary, p.decision]), [
      ["t1", "Remove Bob Brown (bob@acme.test) from Acme Inc", null],
      ["t2", "Cancel the invitation of gina@acme.test", null],
    ]);
  });

  it("after the decisions, the same reply goes on: the approved call's result, the declined one as declined, then more text", () => {
    let reply = replay(AWAITING);
    reply = { ...reply, parts: reply.parts.map((p) => (p.id === "t1" ? { ...p, decision: true } : p.id === "t2" ? { ...p, decision: false } : p)) };
    // The approvals request numbers its events from 1 again.
    reply = replay([
      ev("conversation", { id: "c1", title: "Cleanup" }, 1),
      ev("tool_result", { id: "t1", name: "member_remove", is_error: false, content: "Removed Bob Brown" }, 2),
      ev("tool_result", { id: "t2", name: "invitation_cancel", is_error: true, content: "The user declined this action." }, 3),
      ev("text", { text: "Bob is gone; the invitation stays." }, 4),
      ev("done", { stop_reason: "end_turn", iterations: 2 }, 5),
    ], resumeMessage(reply));
    assert.equal(reply.status, "done");
    assert.deepEqual(reply.parts.map((p) => (p.kind === "tool" ? [p.id, p.status] : p.text)), [
      "I'll remove them.",
      ["t1", "done"],
      ["t2", "declined"],
      "Bob is gone; the invitation stays.",
    ]);
    assert.equal(reply.parts[1].result, "Removed Bob Brown");
  });

  it("a reply left waiting shows its calls as declined once the user sends a new message instead", () => {
    const reply = declineWaiting(replay(AWAITING));
    assert.equal(reply.status, "done");
    assert.deepEqual(reply.parts.filter((p) => p.kind === "tool").map((p) => p.status), ["declined", "declined"]);
    const done = replay([ev("text", { text: "Hi" }), ev("done", { stop_reason: "end_turn" })]);
    assert.equal(declineWaiting(done), done);
  });

  it("reads a conversation the server keeps: one reply per question, steps in order, waiting calls as cards", () => {
    let n = 0;
    const messages = fromServerMessages(
      [
        { role: "user", content: "Who are the admins?" },
        { role: "assistant", content: "Let me look.", tool_calls: [{ id: "t1", name: "member_list", input: { role: "admin" }, status: "ok", content: "[Alice]" }] },
        { role: "assistant", content: "Alice is the admin.", tool_calls: [] },
        { role: "user", content: "Remove Bob" },
        { role: "assistant", content: "", tool_calls: [
          { id: "t2", name: "member_remove", input: { email: "bob@acme.test" }, status: "awaiting_approval", content: null, summary: "Remove Bob Brown (bob@acme.test) from Acme Inc" },
          { id: "t3", name: "invitation_cancel", input: {}, status: "declined", content: "declined" },
        ] },
      ],
      () => `m${++n}`,
    );
    assert.deepEqual(messages.map((m) => [m.id, m.role, m.status]), [["m1", "user", undefined], ["m2", "assistant", "done"], ["m3", "user", undefined], ["m4", "assistant", "awaiting"]]);
    assert.deepEqual(messages[1].parts.map((p) => (p.kind === "tool" ? [p.name, p.status, p.result] : p.text)), ["Let me look.", ["member_list", "done", "[Alice]"], "Alice is the admin."]);
    assert.deepEqual(messages[3].parts.map((p) => [p.id, p.status, p.summary]), [["t2", "awaiting", "Remove Bob Brown (bob@acme.test) from Acme Inc"], ["t3", "declined", null]]);
    assert.deepEqual(fromServerMessages(null, () => "x"), []);
  });

  it("reads a call the role did not permit as failed, and a status it does not know as no success", () => {
    const call = (status) => ({ id: status, name: "member_remove", input: {}, status, content: "Refused." });
    const [reply] = fromServerMessages([{ role: "assistant", content: "", tool_calls: [call("not_permitted"), call("exploded"), call("ok")] }], () => "m1");
    assert.deepEqual(reply.parts.map((p) => p.status), ["error", "error", "done"]);
  });

  it("reads a call without a result as running while a request runs in the conversation, else as stopped", () => {
    const messages = [
      { role: "user", content: "Remove Bob" },
      { role: "assistant", content: "", tool_calls: [{ id: "t1", name: "member_remove", input: {}, status: "error", content: null }] },
    ];
    const running = fromServerMessages(messages, () => "m", 0, true)[1];
    assert.deepEqual(running.parts.map((p) => [p.status, p.result]), [["running", null]]);
    assert.equal(continuesReply(running), true);
    const ended = fromServerMessages(messages, () => "m", 0, false)[1];
    assert.deepEqual(ended.parts.map((p) => p.status), ["stopped"]);
    assert.equal(continuesReply(ended), false);
  });

  it("a request in flight continues the last reply only when that reply waits for approval or carries out calls", () => {
    assert.equal(continuesReply(replay(AWAITING)), true);
    assert.equal(continuesReply(replay([ev("text", { text: "Hi" }), ev("done", { stop_reason: "end_turn" })])), false);
    assert.equal(continuesReply({ id: "u1", role: "user", text: "Hi" }), false);
    assert.equal(continuesReply(undefined), false);
  });

  it("counts tokens the way the quotas do", () => {
    assert.equal(countedTokens({ input_tokens: 100, output_tokens: 20, cache_creation_input_tokens: 5, cache_read_input_tokens: 7 }), 132);
  });
});
