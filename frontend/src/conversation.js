// The conversation as plain data, and the pure steps that change it. No DOM, no I/O: unit tested in Node.
//
// A reply is `{id, role: "assistant", parts, status, stopReason, error, lastEventId, createdAt}`. Its
// status is `streaming`, `awaiting` (tool calls wait for the user's approval), `done`, `stopped`,
// `interrupted` or `error`. A part is `{kind: "text", text}` or a tool call `{kind: "tool", id, name,
// input, status, result, summary, decision}` whose status is `running`, `awaiting`, `done`, `error`,
// `declined` or `stopped`; `summary` is set on a call that needed approval, `decision` (true/false) once
// the user decided it.

/** A new user message. */
export function userMessage(id, text, createdAt) {
  return { id, role: "user", text, createdAt };
}

/** A new, empty assistant reply that is about to stream. */
export function assistantMessage(id, createdAt) {
  return { id, role: "assistant", parts: [], status: "streaming", stopReason: null, error: null, lastEventId: 0, createdAt };
}

/** The Markdown the assistant has written so far, text parts joined in order. */
export function assistantText(message) {
  return message.parts
    .filter((part) => part.kind === "text")
    .map((part) => part.text)
    .join("");
}

function settleRunningTools(parts, status) {
  return parts.map((part) => (part.kind === "tool" && part.status === "running" ? { ...part, status } : part));
}

function updateTool(message, id, change) {
  return { ...message, parts: message.parts.map((part) => (part.kind === "tool" && part.id === String(id) ? change(part) : part)) };
}

function resultText(content) {
  if (content === null || content === undefined) return null;
  return typeof content === "string" ? content : JSON.stringify(content);
}

/**
 * Whether `event` is news for `message`: events are numbered per request, so one the reply has already
 * applied (a re-attached stream replays from the last id it saw) is not applied twice.
 */
export function isNewEvent(message, event) {
  return typeof event.id !== "number" || event.id > (message.lastEventId ?? 0);
}

/**
 * Applies one stream event (`{type, data, id}` as the API's SSE events are) to an assistant reply,
 * returning the updated reply; an event already applied leaves it as it is. Text after a tool call
 * starts a new text part, so the reply reads in the order things happened.
 */
export function applyStreamEvent(message, event) {
  if (!isNewEvent(message, event)) return message;
  const applied = applyEventData(message, event);
  return typeof event.id === "number" ? { ...applied, lastEventId: event.id } : applied;
}

function applyEventData(message, { type, data }) {
  switch (type) {
    case "text": {
      if (typeof data.text !== "string" || data.text === "") return message;
      const parts = [...message.parts];
      const last = parts.at(-1);
      if (last && last.kind === "text") parts[parts.length - 1] = { ...last, text: last.text + data.text };
      else parts.push({ kind: "text", text: data.text });
      return { ...message, parts };
    }
    case "tool_use": {
      if (message.parts.some((part) => part.kind === "tool" && part.id === String(data.id))) return message;
      const part = { kind: "tool", id: String(data.id), name: String(data.name), input: data.input ?? {}, status: "running", result: null, summary: null, decision: null };
      return { ...message, parts: [...message.parts, part] };
    }
    case "approval_required":
      return updateTool(message, data.id, (part) => ({ ...part, status: "awaiting", summary: String(data.summary ?? part.summary ?? ""), decision: null }));
    case "tool_result":
      // A call the user declined comes back as a result that says so: it shows as declined, not failed.
      return updateTool(message, data.id, (part) => ({
        ...part,
        status: part.decision === false ? "declined" : data.is_error ? "error" : "done",
        result: resultText(data.content),
      }));
    case "done": {
      const stopReason = typeof data.stop_reason === "string" ? data.stop_reason : "end_turn";
      const status = stopReason === "cancelled" ? "stopped" : stopReason === "approval_required" && waitingCalls(message).length > 0 ? "awaiting" : "done";
      return { ...message, parts: settleRunningTools(message.parts, "stopped"), status, stopReason, error: null };
    }
    case "error":
      return finishMessage(message, "error", { code: String(data.code ?? "internal_error"), message: String(data.message ?? "") });
    default:
      return message;
  }
}

/**
 * Ends a reply from the client's side: `stopped` (the user pressed Stop), `interrupted` (the connection
 * broke), or `error` (with `{code, message}`). Text already received is kept.
 */
export function finishMessage(message, status, error = null) {
  if (message.status !== "streaming") return message;
  return { ...message, parts: settleRunningTools(message.parts, status === "error" ? "error" : "stopped"), status, error };
}

/** The tool calls of a reply that wait for the user's approval. */
export function waitingCalls(message) {
  return message.role === "assistant" ? message.parts.filter((part) => part.kind === "tool" && part.status === "awaiting") : [];
}

/**
 * A reply whose next request is about to stream into it: a re-attached stream, or the answer going on
 * after approvals. Event numbers start again with each request.
 */
export function resumeMessage(message) {
  return { ...message, status: "streaming", error: null, lastEventId: 0 };
}

/**
 * A reply left waiting when the user sent a new message instead of deciding: the server declines its
 * waiting calls, so they show as declined.
 */
export function declineWaiting(message) {
  if (message.role !== "assistant" || message.status !== "awaiting") return message;
  const parts = message.parts.map((part) => (part.kind === "tool" && part.status === "awaiting" ? { ...part, status: "declined", decision: false } : part));
  return { ...message, parts, status: "done" };
}

const SERVER_TOOL_STATUS = { ok: "done", error: "error", not_permitted: "error", declined: "declined", awaiting_approval: "awaiting", running: "running" };

/**
 * The sheet's status of a tool call as the server lists it. A call the role did not permit failed, as it
 * did when it streamed; an unknown status is not taken for a success. A call without a result (content
 * null) has no outcome yet: while a request runs in the conversation it is being carried out (its approval
 * was just decided), otherwise the request that was to run it ended first.
 */
function serverToolStatus(call, active) {
  if (call.status === "awaiting_approval") return "awaiting";
  if (call.content === null || call.content === undefined) return active ? "running" : "stopped";
  return SERVER_TOOL_STATUS[call.status] ?? "error";
}

/**
 * The conversation as the server keeps it (`GET /conversations/{id}`'s `messages`) in the sheet's shape.
 * The assistant messages after one question make one reply (text, then its tool calls, per step); a
 * reply with calls still waiting is `awaiting`. `newId()` names each message; `active` says a request is
 * running in the conversation (`active_request`).
 */
export function fromServerMessages(messages, newId, createdAt = 0, active = false) {
  const result = [];
  for (const message of Array.isArray(messages) ? messages : []) {
    if (message?.role === "user") {
      result.push(userMessage(newId(), String(message.content ?? ""), createdAt));
      continue;
    }
    if (message?.role !== "assistant") continue;
    let reply = result.at(-1);
    if (reply?.role !== "assistant") {
      reply = { ...assistantMessage(newId(), createdAt), status: "done", stopReason: "end_turn" };
      result.push(reply);
    }
    if (typeof message.content === "string" && message.content !== "") {
      const last = reply.parts.at(-1);
      if (last?.kind === "text") last.text += message.content;
      else reply.parts.push({ kind: "text", text: message.content });
    }
    for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
      const status = serverToolStatus(call, active);
      reply.parts.push({
        kind: "tool",
        id: String(call.id),
        name: String(call.name),
        input: call.input ?? {},
        status,
        result: resultText(call.content),
        summary: typeof call.summary === "string" ? call.summary : null,
        decision: status === "declined" ? false : null,
      });
    }
  }
  for (const message of result) {
    if (waitingCalls(message).length > 0) Object.assign(message, { status: "awaiting", stopReason: "approval_required" });
  }
  return result;
}

/**
 * Whether the request running in the conversation goes on with `message` (the last one shown) rather
 * than answering a new question: its calls wait for approval, or are being carried out.
 */
export function continuesReply(message) {
  if (message?.role !== "assistant") return false;
  return message.status === "awaiting" || message.parts.some((part) => part.kind === "tool" && part.status === "running");
}

/** Counted tokens of one `usage` event, as the quotas count them (input + cache + output). */
export function countedTokens(usage) {
  return ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
    .map((key) => Number(usage[key]) || 0)
    .reduce((a, b) => a + b, 0);
}
