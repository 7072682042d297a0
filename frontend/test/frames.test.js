import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FrameScheduler } from "../src/controllers/frames.js";

// Animation frames that run only when the test says a frame has come.
function fakeFrames() {
  const queued = new Map();
  let next = 0;
  return {
    request: (callback) => {
      queued.set(++next, callback);
      return next;
    },
    cancel: (id) => queued.delete(id),
    pending: () => queued.size,
    frame: () => {
      const due = [...queued.values()];
      queued.clear();
      for (const callback of due) callback();
    },
  };
}

describe("frame scheduler", () => {
  it("runs one callback per purpose per frame, however often it is asked", () => {
    const frames = fakeFrames();
    const scheduler = new FrameScheduler(frames);
    scheduler.hostConnected();
    const ran = [];
    scheduler.schedule("render", () => ran.push("render 1"));
    scheduler.schedule("render", () => ran.push("render 2"));
    scheduler.schedule("focus", () => ran.push("focus"));
    frames.frame();
    assert.deepEqual(ran, ["render 1", "focus"]);
    scheduler.schedule("render", () => ran.push("render 3"));
    frames.frame();
    assert.deepEqual(ran, ["render 1", "focus", "render 3"]);
  });

  it("cancels its frames when the sheet leaves the page, and schedules none until it is back", () => {
    const frames = fakeFrames();
    const scheduler = new FrameScheduler(frames);
    const ran = [];
    scheduler.schedule("render", () => ran.push("before joining"));
    scheduler.hostConnected();
    scheduler.schedule("render", () => ran.push("pending"));
    scheduler.hostDisconnected();
    assert.equal(frames.pending(), 0);
    scheduler.schedule("render", () => ran.push("while away"));
    scheduler.hostConnected();
    scheduler.schedule("render", () => ran.push("back"));
    frames.frame();
    assert.deepEqual(ran, ["back"]);
  });
});
