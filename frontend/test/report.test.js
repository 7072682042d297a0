import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError } from "../src/api.js";
import { UsageReportController } from "../src/controllers/usage-report.js";
import {
  bars,
  chartSummary,
  datesBetween,
  defaultRange,
  earliestDay,
  rangeProblem,
  reportView,
} from "../src/report.js";

const REPORT = {
  organization: { id: "org_acme", name: "Acme Inc" },
  from: "2026-02-27",
  to: "2026-03-02",
  days: [
    { date: "2026-03-01", tokens: 3000, requests: 2 },
    { date: "2026-02-27", tokens: 1200, requests: 1 },
  ],
  users: [
    { user_id: "user_bob", name: "Bob Brown", tokens: 1200, requests: 1, tool_calls: 0 },
    { user_id: "user_alice", name: "Alice Anders", tokens: 3000, requests: 2, tool_calls: 3 },
    { user_id: "user_erin", name: "", tokens: 1200, requests: 1, tool_calls: 1 },
  ],
};

// A report endpoint answering REPORT, recording each question.
function fakeApi() {
  const asked = [];
  return {
    asked,
    usageReport: async (range) => {
      asked.push(range);
      return REPORT;
    },
  };
}

describe("usage report", () => {
  it("shows every day of the range, in order, a day without use as zero", () => {
    const view = reportView(REPORT);
    assert.deepEqual(view.days.map((d) => [d.date, d.tokens, d.requests]), [
      ["2026-02-27", 1200, 1],
      ["2026-02-28", 0, 0],
      ["2026-03-01", 3000, 2],
      ["2026-03-02", 0, 0],
    ]);
    assert.equal(view.totalTokens, 4200);
    assert.equal(view.totalRequests, 3);
    assert.equal(view.busiest.date, "2026-03-01");
    assert.equal(view.organization, "Acme Inc");
  });

  it("lists people by tokens, most first, equal ones by name, a nameless one by id", () => {
    assert.deepEqual(reportView(REPORT).users.map((u) => [u.name, u.tokens, u.toolCalls]), [
      ["Alice Anders", 3000, 3],
      ["Bob Brown", 1200, 0],
      ["user_erin", 1200, 1],
    ]);
  });

  it("says the chart in words, and that nothing was used when so", () => {
    assert.equal(
      chartSummary(reportView(REPORT), { locale: "en-GB" }),
      "Tokens per day, 27 Feb 2026 to 2 Mar 2026: 4,200 tokens in 3 requests; the busiest day was 1 Mar 2026 (3,000).",
    );
    assert.equal(chartSummary(reportView({ ...REPORT, days: [] }), { locale: "en-GB" }), "Tokens per day, 27 Feb 2026 to 2 Mar 2026: none used.");
  });

  it("draws bars as tall as their share of the busiest day, a small day still visible, an empty one flat", () => {
    const drawn = bars(reportView(REPORT).days, { width: 400, height: 100 });
    assert.deepEqual(drawn.map((b) => Math.round(b.height)), [40, 0, 100, 0]);
    assert.deepEqual(drawn.map((b) => b.x), [2, 102, 202, 302]);
    assert.ok(drawn.every((b) => b.y + b.height === 100 && b.width === 96));
    const tiny = bars([{ date: "d1", tokens: 1 }, { date: "d2", tokens: 100000 }], { width: 10, height: 100 });
    assert.equal(tiny[0].height, 1);
    assert.deepEqual(bars([{ date: "d", tokens: 0 }], { width: 10, height: 10 }).map((b) => b.height), [0]);
  });

  it("refuses the ranges the server refuses, before asking it", () => {
    const now = new Date("2026-04-10T23:30:00Z");
    const problem = (from, to) => rangeProblem(from, to, now);
    assert.equal(problem("2026-03-02", "2026-03-01"), "The start date must be on or before the end date.");
    assert.equal(problem("2026-01-01", "2026-04-03"), "Choose at most 92 days.");
    assert.equal(problem("2026-01-01", "2026-04-02"), null); // 92 days, both ends counted
    assert.equal(problem("", "2026-03-01"), "Choose a start date.");
    assert.equal(problem("2026-02-30", "2026-03-01"), "Choose a start date.");
    assert.equal(problem("2026-03-01", "soon"), "Choose an end date.");
    // Kept 100 days, today included: 2026-01-01 is the oldest day on 2026-04-10.
    assert.equal(earliestDay(now), "2026-01-01");
    assert.equal(problem("2025-12-31", "2026-01-31"), "Usage is kept 100 days: choose a start on or after 2026-01-01.");
    assert.equal(datesBetween("2026-01-01", "2026-04-02").length, 92);
  });

  it("starts with the last 30 UTC days up to today", () => {
    assert.deepEqual(defaultRange(new Date("2026-03-10T23:30:00-05:00")), { from: "2026-02-10", to: "2026-03-11" });
  });
});

describe("usage report controller", () => {
  const now = () => new Date("2026-03-02T12:00:00Z");

  it("loads the range asked for, and keeps it", async () => {
    const seen = [];
    const api = fakeApi();
    const usage = new UsageReportController({ api: () => api, onChange: (s) => seen.push(s), now });
    await usage.load("2026-02-27", "2026-03-02");
    assert.deepEqual(api.asked, [{ from: "2026-02-27", to: "2026-03-02" }]);
    assert.equal(usage.state.view.users[0].name, "Alice Anders");
    assert.ok(seen.some((s) => s.loading));
    assert.equal(usage.state.loading, false);
    await usage.load();
    assert.deepEqual(api.asked[1], { from: "2026-02-27", to: "2026-03-02" });
  });

  it("explains a bad range without asking the server, and shows the server's own reason for a 400", async () => {
    const api = { asked: [], usageReport: async (range) => { api.asked.push(range); throw new ApiError(400, { error: "invalid_request", message: "to: at most 92 days after from." }); } };
    const usage = new UsageReportController({ api: () => api, now });
    await usage.load("2026-03-02", "2026-03-01");
    assert.equal(usage.state.problem, "The start date must be on or before the end date.");
    assert.equal(api.asked.length, 0);
    await usage.load("2026-03-01", "2026-03-02");
    assert.equal(usage.state.problem, "to: at most 92 days after from.");
    assert.equal(usage.state.error, null);
  });

  it("says the report is not for the caller on a 403, and offers to try again when offline", async () => {
    const forbidden = new UsageReportController({ api: () => ({ usageReport: async () => { throw new ApiError(403, { error: "forbidden" }); } }), now });
    await forbidden.load("2026-03-01", "2026-03-02");
    assert.equal(forbidden.state.forbidden, true);
    assert.equal(forbidden.state.error, null);
    const offline = new UsageReportController({ api: () => ({ usageReport: async () => { throw new TypeError("Failed to fetch"); } }), now });
    await offline.load("2026-03-01", "2026-03-02");
    assert.equal(offline.state.forbidden, false);
    assert.equal(offline.state.error.message, "Failed to fetch");
  });

  it("drops an answer to an older question", async () => {
    let release;
    const slow = new Promise((resolve) => (release = resolve));
    const answers = [slow, Promise.resolve({ ...REPORT, from: "2026-03-01", to: "2026-03-02", days: [] })];
    const usage = new UsageReportController({ api: () => ({ usageReport: () => answers.shift() }), now });
    const first = usage.load("2026-02-27", "2026-03-02");
    await usage.load("2026-03-01", "2026-03-02");
    release(REPORT);
    await first;
    assert.equal(usage.state.view.from, "2026-03-01");
    assert.equal(usage.state.from, "2026-03-01");
  });
});
