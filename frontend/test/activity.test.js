import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../src/api.js";
import { auditRow } from "../src/audit.js";
import { ActivityController } from "../src/controllers/activity.js";

const entry = (n, extra = {}) => ({ at: `2026-03-0${n}T10:00:00Z`, user_id: "user_alice", conversation_id: "c1", request_id: `r${n}`, tool: "member_remove", input: { email: "bob@acme.test" }, status: "ok", approved: true, via: "chat", result: "Removed", ...extra });

// An audit endpoint serving `pages` (by cursor: null for the first) and recording each question.
function fakeApi(pages) {
  const asked = [];
  return {
    asked,
    audit: async (query) => {
      asked.push(query);
      const page = pages[query.cursor ?? "first"];
      if (page instanceof Error) throw page;
      return page;
    },
  };
}

describe("activity", () => {
  it("lists the newest entries first, then older pages with the cursor until there are no more", async () => {
    const api = fakeApi({ first: { entries: [entry(3), entry(2)], next_cursor: "k2" }, k2: { entries: [entry(1)], next_cursor: null } });
    const seen = [];
    const activity = new ActivityController({ api: () => api, onChange: (state) => seen.push(state) });
    await activity.refresh();
    assert.deepEqual(activity.state.items.map((e) => e.request_id), ["r3", "r2"]);
    assert.equal(activity.state.nextCursor, "k2");
    await activity.loadMore();
    assert.deepEqual(activity.state.items.map((e) => e.request_id), ["r3", "r2", "r1"]);
    assert.equal(activity.state.nextCursor, null);
    await activity.loadMore();
    assert.deepEqual(api.asked.map((q) => q.cursor ?? null), [null, "k2"]);
    assert.ok(seen.at(-1).loaded);
  });

  it("filters by user: the list starts again with that user's entries", async () => {
    const api = fakeApi({ first: { entries: [entry(1, { user_id: "user_bob" })], next_cursor: null } });
    const activity = new ActivityController({ api: () => api });
    await activity.filter("  user_bob ");
    assert.equal(api.asked[0].userId, "user_bob");
    assert.equal(activity.state.userId, "user_bob");
    await activity.filter("");
    assert.equal(api.asked[1].userId, undefined);
  });

  it("says the activity is not for the caller on a 403, rather than offering to try again", async () => {
    const api = fakeApi({ first: new ApiError(403, { error: "forbidden" }) });
    const activity = new ActivityController({ api: () => api });
    await activity.refresh();
    assert.equal(activity.state.forbidden, true);
    const offline = new ActivityController({ api: () => fakeApi({ first: new Error("offline") }) });
    await offline.refresh();
    assert.equal(offline.state.forbidden, false);
    assert.equal(offline.state.error.message, "offline");
  });

  it("puts each entry in words: local time, status, whether it was approved, and how it came", () => {
    const row = auditRow(entry(1, { status: "not_permitted", approved: null, via: "mcp", result: null }), { locale: "en-GB", timeZone: "Asia/Tokyo" });
    assert.equal(row.time, "1 Mar 2026, 19:00");
    assert.equal(row.status, "Not permitted");
    assert.equal(row.approved, "Not asked");
    assert.equal(row.via, "MCP");
    assert.equal(row.result, "");
    assert.match(row.input, /"email": "bob@acme.test"/);
    assert.equal(auditRow(entry(2, { approved: false, status: "declined" })).approved, "No");
    assert.equal(auditRow(entry(2)).approved, "Yes");
  });
});
