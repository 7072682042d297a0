import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError, StreamInterrupted } from "../src/api.js";
import { RECONNECT_DELAYS_MS, isTransient, reconnect } from "../src/reconnection.js";

const done = { type: "done", data: { stop_reason: "end_turn" } };

// Attempts that fail with the given errors in turn, then end with `final`.
function attempts(errors, final = done) {
  let calls = 0;
  return {
    calls: () => calls,
    attach: async () => {
      calls += 1;
      const error = errors.shift();
      if (error) throw error;
      return final;
    },
  };
}

describe("reconnection", () => {
  it("tries again after growing pauses until an attempt gets through", async () => {
    const slept = [];
    const { attach, calls } = attempts([new StreamInterrupted(null), new ApiError(503, { error: "unavailable" })]);
    const final = await reconnect({ attach, sleep: async (ms) => slept.push(ms) });
    assert.equal(final, done);
    assert.equal(calls(), 3);
    assert.deepEqual(slept, RECONNECT_DELAYS_MS.slice(0, 3));
    assert.ok(RECONNECT_DELAYS_MS.every((ms, i) => i === 0 || ms > RECONNECT_DELAYS_MS[i - 1]), "the pauses grow");
  });

  it("gives up with the last failure once every attempt failed", async () => {
    const lost = new StreamInterrupted(null);
    const { attach, calls } = attempts([new StreamInterrupted(null), new StreamInterrupted(null), lost]);
    await assert.rejects(reconnect({ attach, sleep: async () => {}, delays: [0, 10, 20] }), (error) => error === lost);
    assert.equal(calls(), 3);
  });

  it("does not repeat an attempt the server refused for good (a deleted conversation, a spent session)", async () => {
    const gone = new ApiError(404, { error: "not_found" });
    const { attach, calls } = attempts([gone]);
    await assert.rejects(reconnect({ attach, sleep: async () => {} }), (error) => error === gone);
    assert.equal(calls(), 1);
  });

  it("passes on the server's null (nothing more to send) as the outcome", async () => {
    const { attach } = attempts([], null);
    assert.equal(await reconnect({ attach, sleep: async () => {} }), null);
  });

  it("stops trying once stopped, without an error", async () => {
    const stop = new AbortController();
    const { attach, calls } = attempts([new StreamInterrupted(null)]);
    const outcome = await reconnect({ attach, signal: stop.signal, sleep: async () => stop.abort(), delays: [5, 5] });
    assert.equal(outcome, undefined);
    assert.equal(calls(), 0);
  });

  it("counts the network and a briefly unwell server as worth another try, and nothing else", () => {
    assert.equal(isTransient(new StreamInterrupted(null)), true);
    assert.equal(isTransient(new ApiError(502, {})), true);
    assert.equal(isTransient(new ApiError(503, { error: "chatbot_disabled" })), false);
    assert.equal(isTransient(new ApiError(401, { error: "unauthorized" })), false);
    assert.equal(isTransient(new Error("bug")), false);
  });
});
