import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError, StreamInterrupted } from "../src/api.js";
import { ConversationController } from "../src/controllers/conversation.js";
import { createChatStore } from "../src/store.js";

const text = (t) => ({ type: "text", data: { text: t } });
const done = { type: "done", data: { stop_reason: "end_turn", iterations: 1 } };

// How the fake server answers one message: each is `async ({signal, onEvent}) => final event`.
const answer = (...texts) => async ({ onEvent }) => {
  for (const t of texts) onEvent(text(t));
  onEvent(done);
  return done;
};
const refuse = (status, body) => async () => {
  throw new ApiError(status, body);
};
const drop = (...texts) => async ({ onEvent }) => {
  for (const t of texts) onEvent(text(t));
  throw new StreamInterrupted(null);
};
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

function fakeApi() {
  const behaviours = [];
  return {
    sent: [],
    cancels: 0,
    cancelAnswer: null, // a promise to answer cancels with, else at once
    reply(...next) {
      behaviours.push(...next);
    },
    send(request) {
      this.sent.push(request);
      return behaviours.shift()(request);
    },
    cancel() {
      this.cancels++;
      return this.cancelAnswer ?? Promise.resolve({ cancelled: true });
    },
  };
}

function setup(options = {}) {
  const api = fakeApi();
  const store = createChatStore();
  store.getState().loadUser("alice@acme");
  const busyChanges = [];
  let time = 10_000;
  const controller = new ConversationController({
    store,
    api: () => api,
    onBusy: (busy) => busyChanges.push(busy),
    now: () => time,
    sleep: async () => {},
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
  return { api, store, controller, busyChanges, reply, interrupt, tick: (ms) => (time += ms) };
}

// Lets every pending promise callback run (the fakes answer without real I/O).
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("conversation controller", () => {
  it("is busy from the moment a message is accepted until its reply has ended", async () => {
    const { api, controller, busyChanges, reply } = setup();
    api.reply(answer("Hello ", "there."));
    const sending = controller.send("Hi");
    assert.equal(controller.busy, true);
    await sending;
    assert.equal(controller.busy, false);
    assert.deepEqual(busyChanges, [true, false]);
    assert.equal(reply().status, "done");
    assert.equal(reply().parts[0].text, "Hello there.");
    assert.equal(api.sent[0].message, "Hi");
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
    api.reply(async ({ onEvent }) => {
      await release.promise;
      return answer("Still here.")({ onEvent });
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
    const sleeps = [];
    const { api, controller, reply, interrupt, tick } = setup({ sleep: async (ms) => sleeps.push(ms) });
    await interrupt(() => controller.stop());
    tick(1000);
    api.reply(refuse(409, { error: "concurrent_request" }), refuse(409, { error: "concurrent_request" }), answer("Second answer."));
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
    api.reply(answer("Next."));
    const second = controller.send("Second");
    await settle();
    assert.equal(api.sent.length, 1, "sent before the cancel was answered");
    cancelAnswered.resolve({ cancelled: true });
    await second;
    assert.equal(api.sent.length, 2);
  });

  it("retry takes back the failed reply and its question, and asks again", async () => {
    const { api, store, controller, reply } = setup();
    api.reply(drop("Half an ans"), answer("A whole answer."));
    await controller.send("Question");
    assert.equal(reply().status, "interrupted");
    assert.equal(reply().parts[0].text, "Half an ans");
    await controller.retry(reply().id);
    const messages = store.getState().messages;
    assert.deepEqual(messages.map((m) => m.role), ["user", "assistant"]);
    assert.equal(messages[0].text, "Question");
    assert.equal(reply().parts[0].text, "A whole answer.");
    assert.deepEqual(api.sent.map((r) => r.message), ["Question", "Question"]);
  });

  it("new chat stops the reply in flight and empties the conversation", async () => {
    const { api, store, controller, interrupt } = setup();
    await interrupt(() => controller.newChat(), "Question", "Partial");
    assert.equal(api.cancels, 1);
    assert.deepEqual(store.getState().messages, []);
    assert.equal(controller.busy, false);
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
