// What to read out next from a streaming reply: whole sentences as they complete, the rest at the end,
// so a screen reader hears the answer in calm pieces instead of every token.

const BOUNDARY = /[.!?…:;](?=\s)|\n/g;

/**
 * Given the reply's plain text so far and how much of it was already announced, returns
 * `{text, upTo}` (what to announce and the new announced length), or null when nothing is due.
 * `final` flushes whatever is left.
 */
export function nextAnnouncement(full, announced, final = false) {
  // Trailing whitespace (a rendered block's closing newline) is not a boundary: more may follow.
  const plain = full.trimEnd();
  if (plain.length <= announced) return null;
  let end = plain.length;
  if (!final) {
    end = -1;
    for (const match of plain.matchAll(BOUNDARY)) {
      const after = match.index + match[0].length;
      if (after > announced) end = after;
    }
    if (end < 0) return null;
  }
  const text = plain.slice(announced, end).replace(/\s+/g, " ").trim();
  return { text, upTo: end };
}
