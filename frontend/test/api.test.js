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

// A fake fetch that answers each call with the next of `answers` and records what was asked.
function fakeFetch(...answers) {
  const calls = [];
  const fetch = async (url, init = {}) => {
    calls.push({ url, init, method: init.method ?? "GET", headers: init.headers ?? {} });
    const next = answers.shift();
    return typeof next === "function" ? next(url, init) : next;
  };
  return { calls, fetch };
}

const DONE = 'id: 3\nevent: done\ndata: {"stop_reason":"end_turn","iterations":1}\n\n';

describe("ChatApi", () => {
  it("posts the message into its conversation with the bearer token, and streams events with their ids", async () => {
    const { calls, fetch } = fakeFetch(sseResponse(['id: 1\nevent: conversation\ndata: {"id":"c1","title":"Hi"}\n\n', 'id: 2\nevent: text\ndata: {"text":"Hi"}\n\n', DONE]));
    const api = new ChatApi({ baseUrl: "https://api.example/", getToken: async () => "jwt-1", fetch });
    const events = [];
    const final = await api.send({ message: "Hello", conversationId: "c1", onEvent: (e) => events.push(e) });
    assert.equal(calls[0].url, "https://api.example/api/chatbot/message");
    assert.equal(calls[0].headers.authorization, "Bearer jwt-1");
    assert.deepEqual(JSON.parse(calls[0].init.body), { message: "Hello", conversation_id: "c1" });
    assert.deepEqual(events.map((e) => [e.type, e.id]), [["conversation", 1], ["text", 2], ["done", 3]]);
    assert.equal(final.type, "done");
  });

  it("leaves the conversation out of a first message, so the server starts a new one, and sends no history", async () => {
    const { calls, fetch } = fakeFetch(sseResponse([DONE]));
    await new ChatApi({ baseUrl: "", fetch }).send({ message: "Hello", conversationId: null, onEvent: () => {} });
    assert.deepEqual(JSON.parse(calls[0].init.body), { message: "Hello" });
  });

  it("sends the decisions on waiting calls as approvals of the conversation", async () => {
    const { calls, fetch } = fakeFetch(sseResponse([DONE]));
    const api = new ChatApi({ baseUrl: "", fetch });
    const final = await api.decide({ conversationId: "c1", approvals: { t1: true, t2: false }, onEvent: () => {} });
    assert.equal(calls[0].url, "/api/chatbot/message");
    assert.equal(calls[0].method, "POST");
    assert.deepEqual(JSON.parse(calls[0].init.body), { conversation_id: "c1", approvals: { t1: true, t2: false } });
    assert.equal(final.type, "done");
  });

  it("re-attaches to a conversation's stream after the last event applied, with Last-Event-ID", async () => {
    const { calls, fetch } = fakeFetch(sseResponse(['id: 5\nevent: text\ndata: {"text":"on"}\n\n', DONE]));
    const api = new ChatApi({ baseUrl: "https://api.example", getToken: async () => "jwt", fetch });
    const events = [];
    const final = await api.resume({ conversationId: "c 1", after: 4, onEvent: (e) => events.push(e) });
    assert.equal(calls[0].url, "https://api.example/api/chatbot/conversations/c%201/stream");
    assert.equal(calls[0].method, "GET");
    assert.equal(calls[0].headers["last-event-id"], "4");
    assert.equal(calls[0].headers.authorization, "Bearer jwt");
    assert.equal(calls[0].headers.accept, "text/event-stream");
    assert.deepEqual(events.map((e) => e.id), [5, 3]);
    assert.equal(final.type, "done");
  });

  it("replays from the start without Last-Event-ID, and answers null when the server has nothing to send (204)", async () => {
    const { calls, fetch } = fakeFetch(new Response(null, { status: 204 }));
    const events = [];
    const final = await new ChatApi({ baseUrl: "", fetch }).resume({ conversationId: "c1", after: 0, onEvent: (e) => events.push(e) });
    assert.equal(final, null);
    assert.deepEqual(events, []);
    assert.equal("last-event-id" in calls[0].headers, false);
  });

  it("reports a re-attached stream that ends without done or error as interrupted, like the first one", async () => {
    const { fetch } = fakeFetch(sseResponse(['id: 4\nevent: text\ndata: {"text":"Hi"}\n\n']), sseResponse(['event: text\ndata: {"text":"Hi"}\n\n']));
    const api = new ChatApi({ baseUrl: "", fetch });
    await assert.rejects(api.resume({ conversationId: "c1", after: 3, onEvent: () => {} }), StreamInterrupted);
    await assert.rejects(api.send({ message: "x", onEvent: () => {} }), StreamInterrupted);
  });

  it("reports a fetch that fails (the network is gone) as interrupted, and an abort as the abort", async () => {
    const offline = new ChatApi({ baseUrl: "", fetch: async () => Promise.reject(new TypeError("Failed to fetch")) });
    await assert.rejects(offline.resume({ conversationId: "c1", onEvent: () => {} }), StreamInterrupted);
    const abort = new AbortController();
    abort.abort();
    const aborted = new ChatApi({ baseUrl: "", fetch: async () => Promise.reject(new DOMException("aborted", "AbortError")) });
    await assert.rejects(aborted.send({ message: "x", signal: abort.signal, onEvent: () => {} }), { name: "AbortError" });
  });

  it("lists conversations a page at a time, and opens, renames and deletes one", async () => {
    const summary = { id: "c1", title: "Renamed", created_at: "2026-01-01T00:00:00Z", updated_at: "2026-01-02T00:00:00Z", awaiting_approval: false };
    const { calls, fetch } = fakeFetch(
      jsonResponse(200, { conversations: [summary], next_cursor: "n2" }),
      jsonResponse(200, { ...summary, active_request: null, messages: [] }),
      jsonResponse(200, summary),
      new Response(null, { status: 204 }),
    );
    const api = new ChatApi({ baseUrl: "", getToken: async () => "jwt", fetch });
    assert.deepEqual(await api.conversations({ limit: 20, cursor: "n1" }), { conversations: [summary], next_cursor: "n2" });
    assert.equal((await api.conversation("c1")).active_request, null);
    assert.deepEqual(await api.renameConversation("c1", "Renamed"), summary);
    assert.equal(await api.deleteConversation("c1"), null);
    assert.deepEqual(calls.map((c) => [c.method, c.url]), [
      ["GET", "/api/chatbot/conversations?limit=20&cursor=n1"],
      ["GET", "/api/chatbot/conversations/c1"],
      ["PATCH", "/api/chatbot/conversations/c1"],
      ["DELETE", "/api/chatbot/conversations/c1"],
    ]);
    assert.deepEqual(JSON.parse(calls[2].init.body), { title: "Renamed" });
    assert.ok(calls.every((c) => c.headers.authorization === "Bearer jwt"));
  });

  it("reads the audit trail, of one user when asked, and turns a refusal into an ApiError", async () => {
    const { calls, fetch } = fakeFetch(jsonResponse(200, { entries: [], next_cursor: null }), jsonResponse(403, { error: "forbidden", message: "Owners and admins only" }));
    const api = new ChatApi({ baseUrl: "", fetch });
    await api.audit({ limit: 25, cursor: null, userId: "user_bob" });
    assert.equal(calls[0].url, "/api/chatbot/audit?limit=25&user_id=user_bob");
    const error = await api.audit({ limit: 25 }).catch((e) => e);
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 403);
    assert.equal(calls[1].url, "/api/chatbot/audit?limit=25");
  });

  it("retries a refused token once with a token asked for afresh, on streams and on JSON calls alike", async () => {
    for (const call of [(api) => api.send({ message: "x", onEvent: () => {} }), (api) => api.resume({ conversationId: "c1", after: 2, onEvent: () => {} }), (api) => api.conversations({ limit: 1 })]) {
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
          return url.includes("/conversations?") ? jsonResponse(200, { conversations: [], next_cursor: null }) : sseResponse([DONE]);
        },
      });
      await call(api);
      assert.deepEqual(sent, ["Bearer stale", "Bearer fresh"]);
      assert.deepEqual(asked, [{}, { forceRefresh: true }]);
    }
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
    const error = await api.send({ message: "x", onEvent: () => {} }).catch((e) => e);
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

  it("says a message too long for the daily limit itself must be shortened, not that the day is spent", () => {
    const failure = describeFailure(new ApiError(400, { error: "request_too_large", message: "too long", tier: "user", limit: 50000, estimated: 61000 }));
    assert.equal(failure.title, "Message too long");
    assert.match(failure.message, /50,000/);
    assert.match(failure.message, /[Ss]horten/);
    assert.equal(failure.retryable, false);
  });

  it("explains a conversation that is gone (deleted elsewhere) without offering Retry", () => {
    const failure = describeFailure(new ApiError(404, { error: "not_found" }));
    assert.equal(failure.title, "Conversation not found");
    assert.equal(failure.retryable, false);
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

  it("says when a call waits for approval, and when it was declined", () => {
    assert.equal(toolLabel("member_remove", "awaiting"), "Removing a member: waiting for your approval");
    assert.equal(toolLabel("member_remove", "declined"), "Removing a member: declined");
    assert.equal(toolLabel("report_build", "awaiting"), "Report build: waiting for your approval");
  });
});
