import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError, StreamInterrupted } from "../src/api.js";
import { assistantText } from "../src/conversation.js";
import { ConversationController } from "../src/controllers/conversation.js";
import { RECONNECT_DELAYS_MS } from "../src/reconnection.js";
import { createChatStore } from "../src/store.js";

const ev = (type, data) => ({ type, data });
const text = (t) => ev("text", { text: t });
const done = (stop_reason = "end_turn") => ev("done", { stop_reason, iterations: 1 });
const conversation = (id = "c1", title = "Chat") => ev("conversation", { id, title });
const toolUse = (id, name = "member_remove") => ev("tool_use", { id, name, input: { id } });
const approval = (id, summary = `Do ${id}`) => ev("approval_required", { id, name: "member_remove", input: { id }, summary });
const toolResult = (id, content, is_error = false) => ev("tool_result", { id, name: "member_remove", is_error, content });

// Numbers a request's events as the server does (from 1), so a re-attach can say where it was.
const numbered = (events) => events.map((event, index) => ({ ...event, id: index + 1 }));

// How the fake server answers one request: each is `async ({signal, onEvent, ...}) => final event`.
// `answer` streams all of a request's events; `cut` streams the first `upTo` of them, then the
// connection drops; `replay` answers a re-attach with the events after the request's `after`.
const answer = (...events) => async ({ onEvent }) => {
  const all = numbered(events.length && events.at(-1).type === "done" ? events : [...events, done()]);
  for (const event of all) onEvent(event);
  return all.at(-1);
};
const cut = (upTo, ...events) => async ({ onEvent }) => {
  for (const event of numbered(events).slice(0, upTo)) onEvent(event);
  throw new StreamInterrupted(null);
};
const replay = (...events) => async ({ after, onEvent }) => {
  const all = numbered(events);
  for (const event of all.filter((e) => e.id > after)) onEvent(event);
  return all.at(-1);
};
const refuse = (status, body) => async () => {
  throw new ApiError(status, body);
};
const nothingMore = async () => null;
// Streams `texts`, then holds the stream open until the client aborts it (as fetch does, with an AbortError).
const hang = (...texts) => ({ signal, onEvent }) => {
  for (const t of texts) onEvent(text(t));
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))));
};

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

// The chat API as the controller uses it, answering from queues the test fills.
function fakeApi() {
  const posts = [];
  const resumes = [];
  const kept = new Map();
  return {
    sent: [],
    decided: [],
    resumed: [],
    opened: [],
    cancels: 0,
    cancelAnswer: null, // a promise to answer cancels with, else at once
    reply(...next) {
      posts.push(...next);
    },
    reattach(...next) {
      resumes.push(...next);
    },
    keep(id, detail) {
      kept.set(id, detail);
    },
    send(request) {
      this.sent.push(request);
      return posts.shift()(request);
    },
    decide(request) {
      this.decided.push(request);
      return posts.shift()(request);
    },
    resume(request) {
      this.resumed.push({ ...request });
      return resumes.shift()(request);
    },
    async conversation(id) {
      this.opened.push(id);
      if (!kept.has(id)) throw new ApiError(404, { error: "not_found" });
      return structuredClone(kept.get(id));
    },
    cancel() {
      this.cancels++;
      return this.cancelAnswer ?? Promise.resolve({ cancelled: true });
    },
  };
}

const detail = (id, messages, activeRequest = null) => ({ id, title: "Kept", created_at: "", updated_at: "", active_request: activeRequest, messages });

function setup(options = {}) {
  const api = fakeApi();
  const store = createChatStore();
  store.getState().loadUser("alice@acme");
  const busyChanges = [];
  const sleeps = [];
  let time = 10_000;
  const controller = new ConversationController({
    store,
    api: () => api,
    onBusy: (busy) => busyChanges.push(busy),
    now: () => time,
    sleep: async (ms) => sleeps.push(ms),
    ...options,
  });
  const reply = () => store.getState().messages.at(-1);
  // Sends `question`, waits until its reply is streaming `texts` (the fake server holds it open), ends
  // it with `end()` (Stop, New chat, leaving the page...) and waits until the send is over.
  async function interrupt(end, question = "Tell me", ...texts) {
    api.reply(hang(...texts));
    const sending = controller.send(question);
    await settle();
    end();
    await sending;
  }
  return { api, store, controller, busyChanges, sleeps, reply, interrupt, tick: (ms) => (time += ms) };
}

// Lets every pending promise callback run (the fakes answer without real I/O).
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("conversation controller", () => {
  it("is busy from the moment a message is accepted until its reply has ended", async () => {
    const { api, controller, busyChanges, reply } = setup();
    api.reply(answer(text("Hello "), text("there.")));
    const sending = controller.send("Hi");
    assert.equal(controller.busy, true);
    await sending;
    assert.equal(controller.busy, false);
    assert.deepEqual(busyChanges, [true, false]);
    assert.equal(reply().status, "done");
    assert.equal(reply().parts[0].text, "Hello there.");
    assert.equal(api.sent[0].message, "Hi");
  });

  it("sends the first message without a conversation, and the next ones into the conversation the server named", async () => {
    const { api, store, controller } = setup();
    api.reply(answer(conversation("c7", "Admins"), text("Alice.")), answer(conversation("c7", "Admins"), text("Yes.")));
    await controller.send("Who are the admins?");
    await controller.send("Only Alice?");
    assert.deepEqual(api.sent.map((r) => r.conversationId), [null, "c7"]);
    assert.equal(store.getState().title, "Admins");
  });

  it("ignores a blank message, a second message while a reply is in flight, and any when the assistant is off", async () => {
    const { api, store, controller, interrupt } = setup();
    await controller.send("   ");
    assert.equal(api.sent.length, 0);
    await interrupt(() => {
      controller.send("Second");
      controller.stop();
    }, "First");
    assert.deepEqual(api.sent.map((r) => r.message), ["First"]);
    store.getState().setEnabled(false);
    await controller.send("Third");
    assert.equal(api.sent.length, 1);
  });

  it("stop aborts the stream, asks the server to cancel, and keeps the partial answer as stopped", async () => {
    const { api, controller, reply, interrupt } = setup();
    await interrupt(() => controller.stop(), "Tell me", "Partial ");
    assert.equal(api.cancels, 1);
    assert.equal(api.sent[0].signal.aborted, true);
    assert.equal(reply().status, "stopped");
    assert.equal(reply().parts[0].text, "Partial ");
    assert.equal(controller.busy, false);
  });

  it("a sheet that leaves the page stops its reply as Stop does", async () => {
    const { api, controller, reply, interrupt } = setup();
    controller.hostConnected();
    await interrupt(() => controller.hostDisconnected(), "Tell me", "Partial ");
    assert.equal(api.cancels, 1);
    assert.equal(reply().status, "stopped");
    assert.equal(controller.busy, false);
  });

  it("a sheet moved within the page (out and straight back in) keeps its reply streaming", async () => {
    const { api, controller, reply } = setup();
    controller.hostConnected();
    const release = deferred();
    api.reply(async (request) => {
      await release.promise;
      return answer(text("Still here."))(request);
    });
    const sending = controller.send("Tell me");
    controller.hostDisconnected();
    controller.hostConnected();
    await settle();
    assert.equal(api.cancels, 0);
    release.resolve();
    await sending;
    assert.equal(reply().status, "done");
  });

  it("after Stop, the next message waits out the server's 409s while it lets go of the lock, then goes through", async () => {
    const { api, controller, reply, interrupt, tick, sleeps } = setup();
    await interrupt(() => controller.stop());
    tick(1000);
    api.reply(refuse(409, { error: "concurrent_request" }), refuse(409, { error: "concurrent_request" }), answer(text("Second answer.")));
    await controller.send("Second");
    assert.equal(reply().status, "done");
    assert.equal(reply().parts[0].text, "Second answer.");
    assert.equal(api.sent.length, 4);
    assert.equal(sleeps.filter((ms) => ms === 300).length, 2, "waits a moment before each new attempt");
  });

  it("a 409 long after any Stop means another reply is running, and offers Retry", async () => {
    const { api, controller, reply, interrupt, tick } = setup();
    await interrupt(() => controller.stop());
    tick(60_000);
    api.reply(refuse(409, { error: "concurrent_request" }));
    await controller.send("Second");
    assert.equal(api.sent.length, 2);
    assert.equal(reply().status, "error");
    assert.equal(reply().error.kind, "busy");
    assert.equal(reply().error.retryable, true);
  });

  it("after Stop, the next message is sent only once the server has answered the cancel", async () => {
    const { api, controller, interrupt } = setup({ sleep: () => new Promise(() => {}) });
    const cancelAnswered = deferred();
    api.cancelAnswer = cancelAnswered.promise;
    await interrupt(() => controller.stop());
    api.reply(answer(text("Next.")));
    const second = controller.send("Second");
    await settle();
    assert.equal(api.sent.length, 1, "sent before the cancel was answered");
    cancelAnswered.resolve({ cancelled: true });
    await second;
    assert.equal(api.sent.length, 2);
  });

  it("retry takes back the failed reply and its question, and asks again", async () => {
    const { api, store, controller, reply } = setup();
    // The very first message of a new conversation, cut before the server named the conversation:
    // there is nothing to re-attach to.
    api.reply(async ({ onEvent }) => {
      onEvent(text("Half an ans"));
      throw new StreamInterrupted(null);
    }, answer(text("A whole answer.")));
    await controller.send("Question");
    assert.equal(reply().status, "interrupted");
    assert.equal(reply().parts[0].text, "Half an ans");
    assert.equal(api.resumed.length, 0);
    await controller.retry(reply().id);
    const messages = store.getState().messages;
    assert.deepEqual(messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(messages[0].text, "Question");
    assert.equal(reply().parts[0].text, "A whole answer.");
    assert.deepEqual(api.sent.map((r) => r.message), ["Question", "Question"]);
  });

  it("new chat stops the reply in flight, empties the conversation, and the next message starts a new one", async () => {
    const { api, store, controller } = setup();
    api.reply(answer(conversation("c1"), text("First.")));
    await controller.send("Question");
    api.reply(hang("Partial"));
    const sending = controller.send("Another");
    await settle();
    controller.newChat();
    await sending;
    assert.equal(api.cancels, 1);
    assert.deepEqual(store.getState().messages, []);
    assert.equal(store.getState().conversationId, null);
    assert.equal(controller.busy, false);
    api.reply(answer(text("Fresh.")));
    await controller.send("Fresh start");
    assert.equal(api.sent.at(-1).conversationId, null);
  });

  it("a user switch stops a streaming reply, but not a message still being prepared for the new user", async () => {
    const ready = deferred();
    const { api, controller, reply } = setup({ prepare: () => ready.promise });
    api.reply(hang("For the new user"));
    const sending = controller.send("Question");
    controller.abandon();
    ready.resolve();
    await settle();
    assert.equal(api.cancels, 0);
    assert.equal(reply().status, "streaming");
    controller.abandon();
    await sending;
    assert.equal(api.cancels, 1);
    assert.equal(reply().status, "stopped");
  });

  it("an assistant switched off at the server turns the sheet off and says so", async () => {
    const { api, store, controller, reply } = setup();
    api.reply(refuse(503, { error: "chatbot_disabled", message: "off" }));
    await controller.send("Hello");
    assert.equal(store.getState().enabled, false);
    assert.equal(reply().status, "error");
    assert.equal(reply().error.kind, "disabled");
  });
});

describe("re-attaching to a reply", () => {
  const ANSWER = [conversation("c1"), text("Hello "), text("wor"), text("ld."), done()];

  it("a stream cut mid-answer resumes from the last event applied and completes without duplicated text", async () => {
    const { api, controller, reply, busyChanges } = setup();
    api.reply(cut(3, ...ANSWER));
    api.reattach(replay(...ANSWER));
    await controller.send("Greet the world");
    assert.equal(api.sent.length, 1, "the message was not sent again");
    assert.deepEqual(api.resumed.map((r) => [r.conversationId, r.after]), [["c1", 3]]);
    assert.equal(assistantText(reply()), "Hello world.");
    assert.equal(reply().status, "done");
    assert.deepEqual(busyChanges, [true, false], "busy throughout");
  });

  it("a re-attached stream cut again resumes from where that one got to", async () => {
    const { api, controller, reply } = setup();
    api.reply(cut(2, ...ANSWER));
    api.reattach(async (request) => {
      await replay(...ANSWER.slice(0, 3))(request).catch(() => {});
      throw new StreamInterrupted(null);
    }, replay(...ANSWER));
    await controller.send("Greet the world");
    assert.deepEqual(api.resumed.map((r) => r.after), [2, 3]);
    assert.equal(assistantText(reply()), "Hello world.");
  });

  it("when re-attaching keeps failing, it tries again with growing pauses, then says the connection was lost", async () => {
    const { api, controller, reply, sleeps } = setup();
    api.reply(cut(2, ...ANSWER));
    const lost = async () => {
      throw new StreamInterrupted(null);
    };
    api.reattach(...RECONNECT_DELAYS_MS.map(() => lost));
    await controller.send("Greet the world");
    assert.equal(api.resumed.length, RECONNECT_DELAYS_MS.length);
    assert.deepEqual(sleeps, RECONNECT_DELAYS_MS);
    assert.equal(reply().status, "interrupted");
    assert.equal(reply().error.title, "Connection lost");
    assert.equal(assistantText(reply()), "Hello ", "what arrived is kept");
  });

  it("a connection lost before any event asks whether the request runs, and does not replay an older answer when it does not", async () => {
    const { api, store, controller, reply } = setup();
    store.getState().showConversation(detail("c1", [{ role: "user", content: "Before" }, { role: "assistant", content: "Old answer." }]));
    api.keep("c1", detail("c1", [{ role: "user", content: "Before" }, { role: "assistant", content: "Old answer." }], null));
    api.reply(cut(0, conversation("c1"), text("New")));
    await controller.send("Next question");
    assert.deepEqual(api.opened, ["c1"]);
    assert.equal(api.resumed.length, 0);
    assert.equal(reply().status, "interrupted");
    assert.equal(assistantText(reply()), "");
  });

  it("a connection lost before any event replays the request from its start when the server says it runs", async () => {
    const { api, store, controller, reply } = setup();
    store.getState().showConversation(detail("c1", []));
    api.keep("c1", detail("c1", [{ role: "user", content: "Next question" }], { id: "r2", last_event_id: 2 }));
    const events = [conversation("c1"), text("New answer."), done()];
    api.reply(cut(0, ...events));
    api.reattach(replay(...events));
    await controller.send("Next question");
    assert.deepEqual(api.resumed.map((r) => r.after), [0]);
    assert.equal(assistantText(reply()), "New answer.");
    assert.equal(reply().status, "done");
  });

  it("when the server has nothing more to send (204), the conversation is shown as the server kept it", async () => {
    const { api, store, controller } = setup();
    api.reply(cut(2, ...ANSWER));
    api.reattach(nothingMore);
    api.keep("c1", detail("c1", [{ role: "user", content: "Greet the world" }, { role: "assistant", content: "Hello world." }]));
    await controller.send("Greet the world");
    const messages = store.getState().messages;
    assert.deepEqual(messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(assistantText(messages[1]), "Hello world.");
    assert.equal(messages[1].status, "done");
  });

  it("Stop while re-attaching stops trying and cancels the request on the server", async () => {
    const { api, controller, reply } = setup({ sleep: (ms, signal) => new Promise((resolve) => signal.addEventListener("abort", resolve)) });
    api.reply(cut(2, ...ANSWER));
    const sending = controller.send("Greet the world");
    await settle();
    assert.equal(controller.busy, true);
    controller.stop();
    await sending;
    assert.equal(api.cancels, 1);
    assert.equal(api.resumed.length, 0);
    assert.equal(reply().status, "stopped");
  });

  it("a reload while an answer is being written replays it from its start into an empty reply", async () => {
    const { api, store, controller, reply } = setup();
    api.keep("c1", detail("c1", [{ role: "user", content: "Earlier" }, { role: "assistant", content: "Earlier answer." }, { role: "user", content: "Greet the world" }], { id: "r2", last_event_id: 3 }));
    api.reattach(replay(...ANSWER));
    assert.equal(await controller.open("c1"), true);
    await controller.settled;
    assert.deepEqual(api.resumed.map((r) => r.after), [0]);
    assert.deepEqual(store.getState().messages.map((m) => m.role), ["user", "assistant", "user", "assistant"]);
    assert.equal(assistantText(reply()), "Hello world.");
    assert.equal(reply().status, "done");
    assert.equal(api.sent.length, 0, "nothing was sent again");
  });

  it("a reload while the approved calls are carried out replays the rest into the reply that waited", async () => {
    const { api, store, controller, reply } = setup();
    const waiting = { role: "assistant", content: "Removing Bob.", tool_calls: [{ id: "t1", name: "member_remove", input: {}, status: "awaiting_approval", content: null, summary: "Remove Bob" }] };
    api.keep("c1", detail("c1", [{ role: "user", content: "Remove Bob" }, waiting], { id: "r2", last_event_id: 1 }));
    api.reattach(replay(conversation("c1"), toolResult("t1", "Removed Bob Brown"), text(" Done."), done()));
    await controller.open("c1");
    await controller.settled;
    assert.equal(store.getState().messages.length, 2);
    assert.deepEqual(reply().parts.map((p) => (p.kind === "tool" ? [p.status, p.result] : p.text)), ["Removing Bob.", ["done", "Removed Bob Brown"], " Done."]);
    assert.equal(reply().status, "done");
  });

  it("a reload once the decisions were taken (the calls listed without a result) replays the rest into that reply, the calls running meanwhile", async () => {
    const { api, store, controller, reply } = setup();
    // The server takes the waiting calls when the decisions arrive and writes their results when the
    // request ends: in between it lists them without a result.
    const decided = { role: "assistant", content: "Removing Bob.", tool_calls: [{ id: "t1", name: "member_remove", input: {}, status: "error", content: null }] };
    api.keep("c1", detail("c1", [{ role: "user", content: "Remove Bob" }, decided], { id: "r2", last_event_id: 1 }));
    const hold = deferred();
    api.reattach(async ({ after, onEvent }) => {
      const events = numbered([conversation("c1"), toolResult("t1", "Removed Bob Brown"), text(" Done."), done()]);
      onEvent(events[0]);
      await hold.promise;
      for (const event of events.slice(1).filter((e) => e.id > after)) onEvent(event);
      return events.at(-1);
    });
    await controller.open("c1");
    await settle();
    assert.equal(reply().status, "streaming");
    assert.deepEqual(reply().parts.map((p) => (p.kind === "tool" ? p.status : p.text)), ["Removing Bob.", "running"], "running, not failed");
    hold.resolve();
    await controller.settled;
    assert.equal(store.getState().messages.length, 2, "no new reply");
    assert.deepEqual(reply().parts.map((p) => (p.kind === "tool" ? [p.status, p.result] : p.text)), ["Removing Bob.", ["done", "Removed Bob Brown"], " Done."]);
    assert.equal(reply().status, "done");
  });
});

describe("approvals", () => {
  const ASK = [conversation("c1"), text("I'll do that."), toolUse("t1"), approval("t1", "Remove Bob Brown (bob@acme.test) from Acme Inc"), done("approval_required")];
  const ASK_TWO = [conversation("c1"), toolUse("t1"), toolUse("t2"), approval("t1"), approval("t2"), done("approval_required")];

  it("a reply that needs approval waits with its call undecided, and the sheet is free", async () => {
    const { api, controller, reply } = setup();
    api.reply(answer(...ASK));
    await controller.send("Remove Bob");
    assert.equal(reply().status, "awaiting");
    assert.equal(controller.busy, false);
    assert.deepEqual(reply().parts.filter((p) => p.kind === "tool").map((p) => [p.status, p.summary, p.decision]), [["awaiting", "Remove Bob Brown (bob@acme.test) from Acme Inc", null]]);
  });

  it("Approve sends the decision and the answer streams on in the same reply", async () => {
    const { api, store, controller, reply, busyChanges } = setup();
    api.reply(answer(...ASK), answer(conversation("c1"), toolResult("t1", "Removed Bob Brown"), text(" Bob is no longer a member.")));
    await controller.send("Remove Bob");
    const replyId = reply().id;
    const deciding = controller.decide(replyId, "t1", true);
    assert.equal(reply().status, "streaming", "the card cannot be decided twice while its decision is on its way");
    await deciding;
    assert.deepEqual(api.decided.map((r) => [r.conversationId, r.approvals]), [["c1", { t1: true }]]);
    assert.equal(store.getState().messages.length, 2);
    assert.equal(reply().id, replyId);
    assert.deepEqual(reply().parts.map((p) => (p.kind === "tool" ? p.status : p.text)), ["I'll do that.", "done", " Bob is no longer a member."]);
    assert.equal(reply().status, "done");
    assert.deepEqual(busyChanges, [true, false, true, false]);
  });

  it("with several waiting calls, decisions are collected and sent once, all together", async () => {
    const { api, controller, reply } = setup();
    api.reply(answer(...ASK_TWO), answer(conversation("c1"), toolResult("t1", "Removed"), toolResult("t2", "The user declined this action.", true), text("One done.")));
    await controller.send("Remove both");
    await controller.decide(reply().id, "t2", false);
    assert.equal(api.decided.length, 0, "one call is still undecided");
    assert.equal(reply().status, "awaiting");
    await controller.decide(reply().id, "t1", true);
    assert.deepEqual(api.decided.map((r) => r.approvals), [{ t1: true, t2: false }]);
    assert.deepEqual(reply().parts.filter((p) => p.kind === "tool").map((p) => [p.id, p.status]), [["t1", "done"], ["t2", "declined"]]);
  });

  it("decisions the server refuses put the calls back to decide again, saying why", async () => {
    const { api, controller, reply } = setup();
    api.reply(answer(...ASK), refuse(400, { error: "invalid_request", message: "No call waits for approval." }));
    await controller.send("Remove Bob");
    await controller.decide(reply().id, "t1", true);
    assert.equal(reply().status, "awaiting");
    assert.equal(reply().parts[1].decision, null);
    assert.equal(reply().error.message, "No call waits for approval.");
    assert.equal(controller.busy, false);
  });

  it("a connection lost while the approved calls run re-attaches to that request", async () => {
    const { api, controller, reply } = setup();
    const rest = [conversation("c1"), toolResult("t1", "Removed"), text(" Done."), done()];
    api.reply(answer(...ASK), cut(2, ...rest));
    api.reattach(replay(...rest));
    await controller.send("Remove Bob");
    await controller.decide(reply().id, "t1", true);
    assert.deepEqual(api.resumed.map((r) => r.after), [2]);
    assert.equal(assistantText(reply()), "I'll do that. Done.");
    assert.equal(api.decided.length, 1);
  });

  it("a new message instead of a decision shows the waiting calls as declined", async () => {
    const { api, store, controller } = setup();
    api.reply(answer(...ASK), answer(text("Fine, I won't.")));
    await controller.send("Remove Bob");
    await controller.send("Actually, don't");
    assert.equal(api.sent[1].conversationId, "c1");
    const first = store.getState().messages[1];
    assert.equal(first.parts[1].status, "declined");
    assert.equal(first.status, "done");
  });
});

describe("opening conversations", () => {
  it("opening another conversation stops the reply streaming in this one, then shows the other", async () => {
    const { api, store, controller } = setup();
    api.keep("c2", detail("c2", [{ role: "user", content: "Other question" }, { role: "assistant", content: "Other answer." }]));
    api.reply(hang("Partial"));
    const sending = controller.send("Tell me");
    await settle();
    await controller.open("c2");
    await sending;
    assert.equal(api.cancels, 1);
    assert.equal(store.getState().conversationId, "c2");
    assert.deepEqual(store.getState().messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(controller.busy, false);
  });

  it("an unknown conversation (deleted, or someone else's) is not shown", async () => {
    const { store, controller } = setup();
    store.getState().showConversation(detail("c1", [{ role: "user", content: "Mine" }]));
    assert.equal(await controller.open("gone"), false);
    assert.equal(store.getState().conversationId, "c1");
  });

  it("a conversation that arrives after a newer switch is not put on screen", async () => {
    const { api, store, controller } = setup();
    const slow = deferred();
    api.conversation = async (id) => (id === "slow" ? slow.promise : detail(id, []));
    const first = controller.open("slow");
    controller.newChat();
    slow.resolve(detail("slow", [{ role: "user", content: "Late" }]));
    await first;
    assert.equal(store.getState().conversationId, null);
    assert.deepEqual(store.getState().messages, []);
  });
});
