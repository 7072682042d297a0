// Starter suggestions of an empty chat, fitted to the caller's role: a suggestion may name the permission
// ("resource:action") it needs, and the sheet offers it only to callers who hold that permission, so
// nobody is invited to ask for what their role cannot do. Pure: unit tested in Node.

/** The suggestions a sheet offers when the host gives none. */
export const DEFAULT_SUGGESTIONS = [
  { text: "Who are the admins here?", permission: "member:read" },
  { text: "Show pending invitations", permission: "invitation:read" },
  { text: "Invite gina@acme.test as a member", permission: "invitation:create" },
];

/**
 * Suggestions as the host may give them (strings, or `{text, permission}`) in one shape:
 * `{text, permission}` with `permission` null when anyone may see it; blank ones are dropped.
 */
export function normalizeSuggestions(list) {
  if (!Array.isArray(list)) return [];
  return list
    .map((item) => (item !== null && typeof item === "object" ? { text: String(item.text ?? "").trim(), permission: item.permission ? String(item.permission) : null } : { text: String(item ?? "").trim(), permission: null }))
    .filter((item) => item.text !== "");
}

/**
 * The texts of the suggestions the caller may see. `permissions` is the caller's list (from /usage), or
 * null while it is not known: then only suggestions that need no permission show.
 */
export function visibleSuggestions(suggestions, permissions) {
  const held = new Set(Array.isArray(permissions) ? permissions : []);
  return suggestions.filter((item) => item.permission === null || held.has(item.permission)).map((item) => item.text);
}
