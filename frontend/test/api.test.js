import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ApiError, ChatApi, StreamInterrupted, describeFailure, formatResetTime } from "../src/api.js";
import { nextAnnouncement } from "../src/announce.js";
import { toolLabel } from "../src/labels.js";

function sseResponse(frames) {
  const body = new ReadableStream({
    start(controller) {
      for (const frame of frames) controller.enqueue(new TextEncoder().encode(frame));
      controller.close();
    },
  });
  return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
}

function jsonResponse(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

describe("ChatApi", () => {
  it("posts the message with history and the bearer token, and streams events", async () => {
    const calls = [];
    const api = new ChatApi({
      baseUrl: "https://api.example/",
      getToken: async () => "jwt-1",
      fetch: async (url, init) => {
        calls.push({ url, init });
        return sseResponse(['event: text\ndata: {"text":"Hi"}\n\n', 'event: done\ndata: {"stop_reason":"end_turn","iterations":1}\n\n']);
      },
    });
    const events = [];
    const final = await api.send({ message: "Hello", history: [], onEvent: (e) => events.push(e) });
    assert.equal(calls[0].url, "https://api.example/api/chatbot/message");
    assert.equal(calls[0].init.headers.authorization, "Bearer jwt-1");
    assert.deepEqual(JSON.parse(calls[0].init.body), { message: "Hello", history: [] });
    assert.deepEqual(events.map((e) => e.type), ["text", "done"]);
    assert.equal(final.type, "done");
  });

  it("reports a stream that ends without done or error as interrupted", async () => {
    const api = new ChatApi({ baseUrl: "", fetch: async () => sseResponse(['event: text\ndata: {"text":"Hi"}\n\n']) });
    await assert.rejects(api.send({ message: "x", history: [], onEvent: () => {} }), StreamInterrupted);
  });

  it("retries a refused token once with a token asked for afresh", async () => {
    const asked = [];
    const sent = [];
    const api = new ChatApi({
      baseUrl: "",
      getToken: async (options) => {
        asked.push(options ?? {});
        return options?.forceRefresh ? "fresh" : "stale";
      },
      fetch: async (url, init) => {
        sent.push(init.headers.authorization);
        if (init.headers.authorization === "Bearer stale") return jsonResponse(401, { error: "unauthorized" });
        return sseResponse(['event: done\ndata: {"stop_reason":"end_turn","iterations":1}\n\n']);
      },
    });
    const final = await api.send({ message: "x", history: [], onEvent: () => {} });
    assert.equal(final.type, "done");
    assert.deepEqual(sent, ["Bearer stale", "Bearer fresh"]);
    assert.deepEqual(asked, [{}, { forceRefresh: true }]);
  });

  it("gives up after one retry, and when the host has nothing newer", async () => {
    let calls = 0;
    const refused = async () => {
      calls += 1;
      return jsonResponse(401, { error: "unauthorized", message: "expired" });
    };
    let n = 0;
    const rotating = new ChatApi({ baseUrl: "", getToken: async () => `t${(n += 1)}`, fetch: refused });
    const error = await rotating.usage().catch((e) => e);
    assert.ok(error instanceof ApiError && error.status === 401);
    assert.equal(calls, 2);

    calls = 0;
    const same = new ChatApi({ baseUrl: "", getToken: async () => "same", fetch: refused });
    await assert.rejects(same.cancel(), ApiError);
    assert.equal(calls, 1);
  });

  it("turns a JSON error answer into an ApiError with its details", async () => {
    const api = new ChatApi({
      baseUrl: "",
      fetch: async () => jsonResponse(429, { error: "limit_exceeded", message: "Daily limit", tier: "user", limit: 50000, used: 50000, resets_at: "2030-01-02T00:00:00Z" }, { "retry-after": "3600" }),
    });
    const error = await api.send({ message: "x", history: [], onEvent: () => {} }).catch((e) => e);
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 429);
    assert.equal(error.code, "limit_exceeded");
    assert.equal(error.body.tier, "user");
    assert.equal(error.retryAfter, 3600);
  });
});

describe("failure messages", () => {
  const options = { now: new Date("2030-01-01T15:00:00Z"), locale: "en-GB", timeZone: "Europe/Berlin" };

  it("says which limit was reached and when it resets, in local time", () => {
    const failure = new ApiError(429, { error: "limit_exceeded", tier: "organization", limit: 1000000, used: 1000000, resets_at: "2030-01-02T00:00:00Z" });
    const text = describeFailure(failure, options);
    assert.equal(text.kind, "limit");
    assert.match(text.message, /your organization's daily limit of 1,000,000 tokens/);
    // Midnight UTC is 01:00 in Berlin, on the same local day as 15:00 UTC + 1 h.
    assert.match(text.message, /resets tomorrow at 01:00/);
    assert.equal(text.retryable, false);
  });

  it("formats reset times relative to the local day", () => {
    assert.equal(formatResetTime("2030-01-01T20:00:00Z", options), "at 21:00");
    assert.equal(formatResetTime("2030-01-02T00:00:00Z", { ...options, timeZone: "America/New_York" }), "at 19:00");
    assert.equal(formatResetTime("not a date", options), null);
  });

  it("explains a reply already running elsewhere, an expired session, and a disabled assistant", () => {
    assert.equal(describeFailure(new ApiError(409, { error: "concurrent_request" })).kind, "busy");
    assert.match(describeFailure(new ApiError(409, { error: "concurrent_request" })).message, /another tab/);
    assert.equal(describeFailure(new ApiError(401, { error: "unauthorized" })).title, "Please sign in again");
    assert.equal(describeFailure(new ApiError(503, { error: "chatbot_disabled" })).kind, "disabled");
    assert.equal(describeFailure(new ApiError(503, { error: "unavailable" })).retryable, true);
  });

  it("offers Retry after a lost connection and after retryable stream errors", () => {
    assert.equal(describeFailure(new StreamInterrupted(null)).retryable, true);
    assert.equal(describeFailure({ code: "upstream_overloaded", message: "" }).title, "The assistant is busy");
    assert.equal(describeFailure({ code: "limit_exceeded", message: "" }).retryable, false);
  });
});

describe("screen reader announcements", () => {
  it("announces whole sentences as they complete and the rest at the end", () => {
    assert.equal(nextAnnouncement("Hello there", 0), null);
    assert.deepEqual(nextAnnouncement("Hello there. How are", 0), { text: "Hello there.", upTo: 12 });
    assert.equal(nextAnnouncement("Hello there. How are", 12), null);
    assert.deepEqual(nextAnnouncement("Hello there. How are you", 12, true), { text: "How are you", upTo: 24 });
    // A block's trailing newline is not the end of a sentence: the paragraph may go on.
    assert.equal(nextAnnouncement("Hello there\n", 0), null);
    assert.deepEqual(nextAnnouncement("One.\nTwo", 0), { text: "One.", upTo: 5 });
  });
});

describe("tool labels", () => {
  it("names known tools in words and humanizes unknown ones", () => {
    assert.equal(toolLabel("member_list", "running"), "Listing members");
    assert.equal(toolLabel("member_list", "done"), "Listed members");
    assert.equal(toolLabel("invitation_create", "error"), "Sending an invitation failed");
    assert.equal(toolLabel("report_build", "running"), "Running report build");
  });
});
