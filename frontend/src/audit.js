// The audit trail's entries in words, as <chatbot-activity> shows them. Pure: unit tested in Node.
import { formatLocalTime, pretty } from "./format.js";

const STATUS_WORDS = { ok: "Succeeded", error: "Failed", declined: "Declined", not_permitted: "Not permitted" };
const VIA_WORDS = { chat: "Chat", mcp: "MCP" };

/**
 * One entry (`{at, user_id, tool, input, status, approved, via, result, ...}`) as the cells of its row:
 * the time in the reader's local time, the status and approval in words, input and result as text.
 */
export function auditRow(entry, options = {}) {
  return {
    at: String(entry.at ?? ""),
    time: formatLocalTime(entry.at, options) || String(entry.at ?? ""),
    user: String(entry.user_id ?? ""),
    tool: String(entry.tool ?? ""),
    status: STATUS_WORDS[entry.status] ?? String(entry.status ?? ""),
    statusKind: String(entry.status ?? ""),
    approved: entry.approved === true ? "Yes" : entry.approved === false ? "No" : "Not asked",
    via: VIA_WORDS[entry.via] ?? String(entry.via ?? ""),
    input: pretty(entry.input ?? {}),
    result: entry.result === null || entry.result === undefined ? "" : pretty(entry.result),
  };
}
