// The conversation as plain data, and the pure steps that change it. No DOM, no I/O: unit tested in Node.

/** How many history turns the API accepts (at most 40, alternating, starting with user). */
export const MAX_HISTORY_TURNS = 40;

/** A new user message. */
export function userMessage(id, text, createdAt) {
  return { id, role: "user", text, createdAt };
}

/** A new, empty assistant reply that is about to stream. */
export function assistantMessage(id, createdAt) {
  return { id, role: "assistant", parts: [], status: "streaming", stopReason: null, error: null, createdAt };
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

/**
 * Applies one stream event (`{type, data}` as the API's SSE events are: README, "How it works") to an assistant reply,
 * returning the updated reply. Text after a tool call starts a new text part, so the reply reads in
 * the order things happened.
 */
export function applyStreamEvent(message, event) {
  const { type, data } = event;
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
      const part = { kind: "tool", id: String(data.id), name: String(data.name), input: data.input ?? {}, status: "running", result: null };
      return { ...message, parts: [...message.parts, part] };
    }
    case "tool_result": {
      const parts = message.parts.map((part) =>
        part.kind === "tool" && part.id === String(data.id)
          ? { ...part, status: data.is_error ? "error" : "done", result: typeof data.content === "string" ? data.content : JSON.stringify(data.content) }
          : part,
      );
      return { ...message, parts };
    }
    case "done": {
      const stopReason = typeof data.stop_reason === "string" ? data.stop_reason : "end_turn";
      const status = stopReason === "cancelled" ? "stopped" : "done";
      return { ...message, parts: settleRunningTools(message.parts, "stopped"), status, stopReason };
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

/**
 * The `history` to send with the next message: completed pairs of turns, oldest dropped first to stay
 * within the API's limit. A reply that produced no text (it failed before writing anything) is left
 * out together with its question, so turns keep alternating user/assistant.
 */
export function toHistory(messages) {
  const turns = [];
  for (let i = 0; i < messages.length - 1; i++) {
    const question = messages[i];
    const answer = messages[i + 1];
    if (question.role !== "user" || answer.role !== "assistant" || answer.status === "streaming") continue;
    const text = assistantText(answer).trim();
    if (text === "") continue;
    turns.push({ role: "user", content: question.text }, { role: "assistant", content: text });
    i++;
  }
  return turns.slice(Math.max(0, turns.length - MAX_HISTORY_TURNS));
}

/**
 * Conversations restored from storage: a reply that was still streaming when the page went away can
 * never finish, so it is marked interrupted (and offers Retry).
 */
export function restoreMessages(value) {
  if (!Array.isArray(value)) return [];
  return value
    .filter((m) => m && typeof m === "object" && (m.role === "user" || m.role === "assistant") && typeof m.id === "string")
    .map((m) => (m.role === "assistant" && m.status === "streaming" ? finishMessage(m, "interrupted") : m));
}

/** Counted tokens of one `usage` event, as the quotas count them (input + cache + output). */
export function countedTokens(usage) {
  return ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"]
    .map((key) => Number(usage[key]) || 0)
    .reduce((a, b) => a + b, 0);
}
