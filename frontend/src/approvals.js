// Approval decisions: the user decides each tool call a reply left waiting, and the server takes them all
// in one request (it refuses a request that leaves any waiting call undecided). Pure: unit tested in Node.
import { waitingCalls } from "./conversation.js";

/**
 * The reply with the user's decision on its waiting call `callId` (`approved` true or false). A call
 * that is not waiting, or was already decided, is left as it is: a decision is not taken back.
 */
export function recordDecision(reply, callId, approved) {
  if (reply.status !== "awaiting") return reply;
  let changed = false;
  const parts = reply.parts.map((part) => {
    if (part.kind !== "tool" || part.id !== callId || part.status !== "awaiting" || part.decision !== null) return part;
    changed = true;
    return { ...part, decision: Boolean(approved) };
  });
  return changed ? { ...reply, parts } : reply;
}

/** The reply with its decisions forgotten (the server refused them): every waiting call can be decided again. */
export function forgetDecisions(reply) {
  const parts = reply.parts.map((part) => (part.kind === "tool" && part.status === "awaiting" ? { ...part, decision: null } : part));
  return { ...reply, parts };
}

/** How many of the reply's waiting calls the user has still to decide. */
export function undecidedCount(reply) {
  return waitingCalls(reply).filter((part) => part.decision === null).length;
}

/**
 * The `approvals` body (`{toolUseId: boolean}`) once every waiting call of the reply is decided, else
 * null (decisions are still being collected).
 */
export function approvalsToSend(reply) {
  const waiting = waitingCalls(reply);
  if (waiting.length === 0 || waiting.some((part) => part.decision === null)) return null;
  return Object.fromEntries(waiting.map((part) => [part.id, part.decision]));
}
