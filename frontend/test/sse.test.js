import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StreamProtocolError, createEventStreamParser, readEventStream } from "../src/sse.js";

function collect(pieces) {
  const events = [];
  const parser = createEventStreamParser((event) => events.push(event));
  for (const piece of pieces) parser.feed(piece);
  parser.end();
  return events;
}

function bodyOf(chunks) {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk);
      controller.close();
    },
  });
}

const STREAM =
  'id: 1\nevent: text\ndata: {"type":"text","text":"Hello"}\n\n' +
  ": keep-alive\n\n" +
  'id: 2\nevent: tool_use\ndata: {"type":"tool_use","id":"t1","name":"member_list","input":{}}\n\n' +
  'id: 3\nevent: done\ndata: {"type":"done","stop_reason":"end_turn","iterations":1}\n\n';

const EXPECTED = [
  { type: "text", data: { type: "text", text: "Hello" }, id: 1 },
  { type: "tool_use", data: { type: "tool_use", id: "t1", name: "member_list", input: {} }, id: 2 },
  { type: "done", data: { type: "done", stop_reason: "end_turn", iterations: 1 }, id: 3 },
];

describe("SSE parsing", () => {
  it("yields the same events whatever the chunk boundaries", () => {
    assert.deepEqual(collect([STREAM]), EXPECTED);
    // Every possible single split point, including inside "event:", inside the JSON and between "\n\n".
    for (let cut = 1; cut < STREAM.length; cut++) {
      assert.deepEqual(collect([STREAM.slice(0, cut), STREAM.slice(cut)]), EXPECTED, `split at ${cut}`);
    }
    assert.deepEqual(collect([...STREAM]), EXPECTED, "one character at a time");
  });

  it("accepts CRLF line endings, even with CR and LF in different chunks", () => {
    const crlf = STREAM.replaceAll("\n", "\r\n");
    assert.deepEqual(collect([crlf]), EXPECTED);
    const cut = crlf.indexOf("\r") + 1;
    assert.deepEqual(collect([crlf.slice(0, cut), crlf.slice(cut)]), EXPECTED);
  });

  it("skips keep-alive comments and event types it does not know", () => {
    const events = collect([': keep-alive\n\nevent: future_thing\ndata: {"x":1}\n\nevent: text\ndata: {"text":"a"}\n\n']);
    assert.deepEqual(events, [{ type: "text", data: { text: "a" }, id: null }]);
  });

  it("passes each event's id on as a number, and null when a frame has none or a strange one", () => {
    const events = collect([
      'id: 7\nevent: conversation\ndata: {"id":"c1","title":"Admins"}\n\n',
      'event: text\ndata: {"text":"no id"}\n\n',
      'id: x1\nevent: approval_required\ndata: {"id":"t1","name":"member_remove","input":{},"summary":"Remove Bob"}\n\n',
    ]);
    assert.deepEqual(events.map((e) => [e.type, e.id]), [["conversation", 7], ["text", null], ["approval_required", null]]);
  });

  it("drops a frame cut off by the end of the stream instead of guessing it", () => {
    const events = collect(['event: text\ndata: {"text":"whole"}\n\nevent: done\ndata: {"stop_reason":"end_']);
    assert.deepEqual(events, [{ type: "text", data: { text: "whole" }, id: null }]);
  });

  it("joins multi-line data fields with newlines", () => {
    const events = collect(['event: text\ndata: {"text":\ndata: "two lines"}\n\n']);
    assert.deepEqual(events, [{ type: "text", data: { text: "two lines" }, id: null }]);
  });

  it("refuses data that is not a JSON object", () => {
    assert.throws(() => collect(["event: text\ndata: not json\n\n"]), StreamProtocolError);
    assert.throws(() => collect(["event: text\ndata: [1,2]\n\n"]), StreamProtocolError);
  });

  it("decodes a multi-byte character split across network chunks", async () => {
    const bytes = new TextEncoder().encode('event: text\ndata: {"text":"Grüße 👋 — ok"}\n\n');
    const emoji = bytes.indexOf(0xf0);
    const chunks = [bytes.slice(0, emoji + 1), bytes.slice(emoji + 1, emoji + 3), bytes.slice(emoji + 3)];
    const events = [];
    await readEventStream(bodyOf(chunks), (event) => events.push(event));
    assert.deepEqual(events, [{ type: "text", data: { text: "Grüße 👋 — ok" }, id: null }]);
  });
});
