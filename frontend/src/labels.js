// Human words for the built-in tools: what the indicator says while a call runs and after.

const TOOLS = {
  organization_get: ["Looking up your organization", "Looked up your organization"],
  member_list: ["Listing members", "Listed members"],
  member_get: ["Looking up a member", "Looked up a member"],
  member_update_role: ["Changing a member's role", "Changed a member's role"],
  member_remove: ["Removing a member", "Removed a member"],
  invitation_list: ["Listing invitations", "Listed invitations"],
  invitation_create: ["Sending an invitation", "Sent an invitation"],
  invitation_cancel: ["Cancelling an invitation", "Cancelled an invitation"],
};

function humanize(name) {
  const words = String(name).replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "Tool";
}

/**
 * The label of a tool call in a given status (`running`, `awaiting`, `done`, `error`, `declined`,
 * `stopped`).
 */
export function toolLabel(name, status) {
  const known = TOOLS[name];
  if (status === "awaiting") return `${known ? known[0] : humanize(name)}: waiting for your approval`;
  if (status === "declined") return `${known ? known[0] : humanize(name)}: declined`;
  if (!known) return status === "running" ? `Running ${humanize(name).toLowerCase()}` : humanize(name);
  if (status === "running") return known[0];
  if (status === "done") return known[1];
  if (status === "stopped") return `${known[0]} (stopped)`;
  return `${known[0]} failed`;
}
