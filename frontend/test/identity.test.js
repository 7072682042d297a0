import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IdentityController, tokenClaims } from "../src/controllers/identity.js";
import { createChatStore } from "../src/store.js";

// An unsigned JWT-shaped token: the sheet only reads the payload.
const jwt = (payload) => `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;

function setup() {
  const store = createChatStore();
  let switches = 0;
  const identity = new IdentityController({ store, onSwitch: () => switches++ });
  return { store, identity, switches: () => switches };
}

describe("token claims", () => {
  it("reads a base64url payload (its - and _, without padding)", () => {
    for (const name of ["Ana?>", "Ann~~?"]) {
      assert.deepEqual(tokenClaims(jwt({ sub: "user_1", org_id: "org_acme", name })), { sub: "user_1", org_id: "org_acme", name });
    }
  });

  it("is null for anything that is not a token", () => {
    assert.equal(tokenClaims("not a token"), null);
    assert.equal(tokenClaims(null), null);
    assert.equal(tokenClaims("a.!!!.c"), null);
  });
});

describe("identity controller", () => {
  it("loads the conversation of the user the token names, and reports only a change of user", async () => {
    const { store, identity, switches } = setup();
    let token = jwt({ sub: "alice", org_id: "acme", name: "Alice Anders" });
    identity.source = async () => token;
    await identity.refresh();
    assert.equal(store.getState().userKey, "alice@acme");
    assert.equal(identity.claims.name, "Alice Anders");
    await identity.refresh();
    assert.equal(switches(), 1);
    token = jwt({ sub: "carol", org_id: "acme" });
    await identity.refresh();
    assert.equal(store.getState().userKey, "carol@acme");
    assert.equal(switches(), 2);
  });

  it("counts a failing or missing token source as nobody signed in", async () => {
    const { store, identity } = setup();
    identity.source = async () => {
      throw new Error("auth server down");
    };
    await identity.refresh();
    assert.equal(store.getState().userKey, "anonymous");
    assert.equal(identity.claims, null);
    identity.source = "not a function";
    assert.equal(identity.signedIn, false);
    assert.equal(await identity.token(), null);
  });

  it("passes a request for a fresh token through to the host", async () => {
    const { identity } = setup();
    const asked = [];
    identity.source = async (options) => {
      asked.push(options);
      return "jwt";
    };
    assert.equal(await identity.token({ forceRefresh: true }), "jwt");
    assert.deepEqual(asked, [{ forceRefresh: true }]);
  });

  it("reads the token when the sheet joins the page, if the host gave a source", async () => {
    const { store, identity } = setup();
    identity.hostConnected();
    assert.equal(store.getState().userKey, null);
    identity.source = async () => jwt({ sub: "bob", org_id: "acme" });
    identity.hostConnected();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(store.getState().userKey, "bob@acme");
  });
});
