import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { approvalsToSend, forgetDecisions, recordDecision, undecidedCount } from "../src/approvals.js";

const call = (id, extra = {}) => ({ kind: "tool", id, name: "member_remove", input: {}, status: "awaiting", result: null, summary: `Do ${id}`, decision: null, ...extra });
const reply = (parts, status = "awaiting") => ({ id: "r1", role: "assistant", status, parts });

describe("approval decisions", () => {
  it("sends nothing until every waiting call is decided, then all decisions at once", () => {
    let r = reply([{ kind: "text", text: "Both?" }, call("t1"), call("t2")]);
    assert.equal(approvalsToSend(r), null);
    assert.equal(undecidedCount(r), 2);
    r = recordDecision(r, "t2", false);
    assert.equal(approvalsToSend(r), null);
    assert.equal(undecidedCount(r), 1);
    r = recordDecision(r, "t1", true);
    assert.deepEqual(approvalsToSend(r), { t1: true, t2: false });
    assert.equal(undecidedCount(r), 0);
  });

  it("leaves out calls that do not wait (they already ran)", () => {
    const r = recordDecision(reply([call("t0", { status: "done", result: "ok" }), call("t1")]), "t1", true);
    assert.deepEqual(approvalsToSend(r), { t1: true });
  });

  it("does not take a decision back, nor record one on a call that does not wait or a reply that is not waiting", () => {
    const decided = recordDecision(reply([call("t1")]), "t1", true);
    assert.equal(recordDecision(decided, "t1", false), decided);
    const ran = reply([call("t1", { status: "done" })]);
    assert.equal(recordDecision(ran, "t1", true), ran);
    const streaming = reply([call("t1")], "streaming");
    assert.equal(recordDecision(streaming, "t1", true), streaming);
    assert.equal(approvalsToSend(reply([])), null);
  });

  it("forgets the decisions the server refused, so each call can be decided again", () => {
    const decided = recordDecision(recordDecision(reply([call("t1"), call("t2")]), "t1", true), "t2", true);
    const again = forgetDecisions(decided);
    assert.equal(undecidedCount(again), 2);
    assert.equal(approvalsToSend(again), null);
  });
});
