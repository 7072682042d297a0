import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StatusController } from "../src/controllers/status.js";
import { UsageController } from "../src/controllers/usage.js";
import { createChatStore } from "../src/store.js";

const usageAnswer = {
  date: "2025-01-02",
  resets_at: "2025-01-03T00:00:00Z",
  tiers: { user: { used: 120, limit: 50_000 }, organization: { used: 999, limit: 1 } },
  role: "member",
  permissions: ["chatbot:use", "organization:read", "member:read"],
};

function setup({ signedIn = true, api = {} } = {}) {
  const store = createChatStore();
  store.getState().loadUser("bob@acme");
  const asked = [];
  const fake = {
    usage: async () => (asked.push("usage"), usageAnswer),
    status: async () => (asked.push("status"), { enabled: true }),
    ...api,
  };
  const usage = new UsageController({ store, api: () => fake, signedIn: () => signedIn });
  const status = new StatusController({ store, api: () => fake });
  return { store, usage, status, asked };
}

describe("usage controller", () => {
  it("puts today's usage of the user's own tier in the store", async () => {
    const { store, usage } = setup();
    usage.hostConnected();
    await usage.refresh();
    assert.deepEqual(store.getState().usage, { used: 120, limit: 50_000, resetsAt: "2025-01-03T00:00:00Z" });
  });

  it("puts the caller's role and permissions in the store, for the suggestions", async () => {
    const { store, usage } = setup();
    usage.hostConnected();
    await usage.refresh();
    assert.equal(store.getState().role, "member");
    assert.deepEqual(store.getState().permissions, ["chatbot:use", "organization:read", "member:read"]);
  });

  it("drops an answer about the user signed in before a switch", async () => {
    let answerNow;
    const { store, usage } = setup({ api: { usage: () => new Promise((resolve) => (answerNow = resolve)) } });
    usage.hostConnected();
    const asking = usage.refresh();
    store.getState().loadUser("alice@acme");
    answerNow(usageAnswer);
    await asking;
    assert.equal(store.getState().usage, null);
    assert.equal(store.getState().permissions, null);
  });

  it("asks nothing while the sheet is out of the page or nobody is signed in", async () => {
    const away = setup();
    await away.usage.refresh();
    away.usage.hostConnected();
    away.usage.hostDisconnected();
    await away.usage.refresh();
    assert.deepEqual(away.asked, []);
    const anonymous = setup({ signedIn: false });
    anonymous.usage.hostConnected();
    await anonymous.usage.refresh();
    assert.deepEqual(anonymous.asked, []);
  });

  it("leaves the meter empty when the server cannot say", async () => {
    const { store, usage } = setup({ api: { usage: async () => Promise.reject(new Error("offline")) } });
    usage.hostConnected();
    await usage.refresh();
    assert.equal(store.getState().usage, null);
  });
});

describe("status controller", () => {
  it("asks whether the assistant is on when the sheet joins the page", async () => {
    const { store, status } = setup({ api: { status: async () => ({ enabled: false }) } });
    status.hostConnected();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(store.getState().enabled, false);
  });

  it("leaves it unknown when the check fails, so the panel stays usable", async () => {
    const { store, status } = setup({ api: { status: async () => Promise.reject(new Error("offline")) } });
    await status.check();
    assert.equal(store.getState().enabled, null);
  });
});
