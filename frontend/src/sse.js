// Server-sent events from a fetch() body: framing by eventsource-parser, payloads as JSON.
import { createParser } from "eventsource-parser";

/** The event types the stream may carry; anything else is ignored (forward compatible). */
export const EVENT_TYPES = new Set(["conversation", "text", "tool_use", "tool_result", "approval_required", "usage", "done", "error"]);

// The server numbers a request's events 1, 2, 3...: the number is where a re-attached stream resumes.
function eventNumber(id) {
  const n = /^\d+$/.test(id ?? "") ? Number(id) : NaN;
  return Number.isSafeInteger(n) ? n : null;
}

/** Raised when a frame's data is not the JSON object the protocol promises. */
export class StreamProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = "StreamProtocolError";
  }
}

/**
 * A push parser: feed it decoded text in arbitrary pieces; it calls `onEvent({type, data, id})` once per
 * complete frame of a known type (`id` is the frame's `id:` as a number, or null without one). Comments
 * (`: keep-alive`) and unknown types are skipped.
 */
export function createEventStreamParser(onEvent) {
  const parser = createParser({
    onEvent(message) {
      const type = message.event ?? "message";
      if (!EVENT_TYPES.has(type)) return;
      let data;
      try {
        data = JSON.parse(message.data);
      } catch {
        throw new StreamProtocolError(`event "${type}" carried data that is not JSON`);
      }
      if (data === null || typeof data !== "object" || Array.isArray(data)) {
        throw new StreamProtocolError(`event "${type}" carried data that is not an object`);
      }
      onEvent({ type, data, id: eventNumber(message.id) });
    },
  });
  return {
    feed: (text) => parser.feed(text),
    // A frame cut off by the end of the stream is incomplete by definition: it is dropped, not guessed.
    end: () => parser.reset(),
  };
}

/**
 * Reads a byte stream (a fetch `Response.body`) to its end, calling `onEvent` per event.
 * UTF-8 is decoded in streaming mode, so a character split across two network chunks stays whole.
 */
export async function readEventStream(body, onEvent) {
  const decoder = new TextDecoder("utf-8");
  const parser = createEventStreamParser(onEvent);
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(decoder.decode(value, { stream: true }));
    }
    parser.feed(decoder.decode());
  } finally {
    parser.end();
    reader.releaseLock();
  }
}
