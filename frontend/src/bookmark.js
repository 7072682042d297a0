// Bookmark: which conversation each user had on screen in this tab, so a reload reopens it. The server
// keeps the conversations; this is only a pointer. "" means a new chat the user started (a reload keeps
// it empty), no entry means "open the most recent one".

const PREFIX = "chatbot:conversation-id:";

/** The bookmarked conversation id of `userKey`: a string ("" for a new chat), or undefined when none. */
export function readBookmark(storage, userKey) {
  try {
    const value = storage?.getItem(PREFIX + userKey);
    return typeof value === "string" ? value : undefined;
  } catch {
    return undefined; // storage blocked: open the most recent conversation
  }
}

/** Bookmarks `conversationId` (null for a new chat) for `userKey`. */
export function writeBookmark(storage, userKey, conversationId) {
  try {
    storage?.setItem(PREFIX + userKey, conversationId ?? "");
  } catch {
    // Storage full or denied: a reload opens the most recent conversation instead.
  }
}
