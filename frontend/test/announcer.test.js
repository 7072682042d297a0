import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Announcer } from "../src/controllers/announcer.js";

const question = { id: "q1", role: "user", text: "Hi" };
const reply = (status, parts = []) => ({ id: "r1", role: "assistant", status, parts });
const tool = (status) => ({ kind: "tool", id: "t1", name: "member_list", status });

function setup() {
  const said = [];
  let rendered = "";
  const announcer = new Announcer({ say: (text) => said.push(text), textOf: (id) => (id === "r1" ? rendered : null) });
  return { said, announcer, render: (text) => (rendered = text) };
}

describe("announcer", () => {
  it("reads a live reply out in whole sentences, and the rest when it ends", () => {
    const { said, announcer, render } = setup();
    announcer.update([question, reply("streaming")]);
    render("First sentence here. Second one");
    announcer.update([question, reply("streaming")]);
    assert.deepEqual(said, ["First sentence here."]);
    render("First sentence here. Second one follows. And a last bit");
    announcer.update([question, reply("streaming")]);
    announcer.update([question, reply("done")]);
    announcer.update([question, reply("done")]);
    assert.deepEqual(said, ["First sentence here.", "Second one follows.", "And a last bit"]);
  });

  it("announces each tool call's progress once per step", () => {
    const { said, announcer } = setup();
    announcer.update([question, reply("streaming", [tool("running")])]);
    announcer.update([question, reply("streaming", [tool("running")])]);
    announcer.update([question, reply("streaming", [tool("done")])]);
    assert.deepEqual(said, ["Listing members", "Listed members"]);
  });

  it("does not read out a reply restored from storage, nor a question", () => {
    const { said, announcer, render } = setup();
    render("An old answer.");
    announcer.update([question]);
    announcer.update([question, reply("done")]);
    assert.deepEqual(said, []);
  });

  it("reads on where it stopped when the reply streams on after approvals, and says a call waits", () => {
    const { said, announcer, render } = setup();
    const waiting = { kind: "tool", id: "t1", name: "member_remove", status: "awaiting" };
    render("I will remove Bob.");
    announcer.update([question, reply("streaming", [waiting])]);
    announcer.update([question, reply("awaiting", [waiting])]);
    render("I will remove Bob.\nBob is gone. Done");
    announcer.update([question, reply("streaming", [{ ...waiting, status: "done" }])]);
    announcer.update([question, reply("done", [{ ...waiting, status: "done" }])]);
    assert.deepEqual(said, ["Removing a member: waiting for your approval", "I will remove Bob.", "Removed a member", "Bob is gone.", "Done"]);
  });

  it("reads only what is new of a reply shown finished that then streams on (re-attached after a reload)", () => {
    const { said, announcer, render } = setup();
    render("Old part.");
    announcer.update([question, reply("awaiting", [tool("done")])]);
    render("Old part.\nNew part.");
    announcer.update([question, reply("streaming", [tool("done")])]);
    announcer.update([question, reply("done", [tool("done")])]);
    assert.deepEqual(said, ["New part."]);
  });
});
