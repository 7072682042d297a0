// Makes half-finished Markdown (a reply still streaming) render as what it is about to become,
// so the layout does not jump when the closing fence, table delimiter or `**` arrives.

const FENCE = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const TABLE_ROW = /^ {0,3}\|.*$/;
const DELIMITER_CELL = /^\s*:?-+:?\s*$/;

/** Splits a table row into its cells, ignoring the optional outer pipes and escaped pipes. */
export function tableCells(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/);
}

function isDelimiterRow(line) {
  const cells = tableCells(line);
  return cells.length > 0 && cells.every((cell) => DELIMITER_CELL.test(cell));
}

// A delimiter row still arriving: only pipes, dashes, colons and spaces, e.g. "|---|:-" or "|".
function isPartialDelimiterRow(line) {
  return /^ {0,3}\|[\s|:-]*$/.test(line);
}

/** Where the open fenced code block starts (its fence), or null when every fence is closed. */
export function openFence(lines) {
  let open = null;
  for (const line of lines) {
    const match = FENCE.exec(line);
    if (!match) continue;
    const marker = match[1];
    if (open === null) {
      // A backtick fence's info string may not contain backticks (CommonMark 4.5).
      if (marker[0] === "`" && match[2].includes("`")) continue;
      open = marker;
    } else if (marker[0] === open[0] && marker.length >= open.length && match[2].trim() === "") {
      open = null;
    }
  }
  return open;
}

function isHeaderRow(line, previous) {
  const pipes = (line.match(/(?<!\\)\|/g) ?? []).length;
  return TABLE_ROW.test(line) && pipes >= 2 && !isDelimiterRow(line) && !TABLE_ROW.test(previous);
}

function repairTable(lines) {
  // A header row followed by a line break and nothing else yet counts as a header row on its own.
  const trailingBreak = lines.length > 1 && lines.at(-1) === "";
  const body = trailingBreak ? lines.slice(0, -1) : lines;
  const last = body.length - 1;
  const line = body[last];
  const previous = last > 0 ? body[last - 1] : "";
  const beforePrevious = last > 1 ? body[last - 2] : "";
  // A header row alone ("| a | b |"): add the delimiter row that must follow, so it renders as a table.
  if (isHeaderRow(line, previous)) {
    return [...body, `|${" --- |".repeat(tableCells(line).length)}`];
  }
  // The delimiter row itself, half written ("| a | b |\n|---|-" or just "|"): complete it.
  if (!trailingBreak && isPartialDelimiterRow(line) && isHeaderRow(previous, beforePrevious)) {
    return [...body.slice(0, last), `|${" --- |".repeat(tableCells(previous).length)}`];
  }
  return lines;
}

// Inline markers left open at the end of the last paragraph: a code span, then strong emphasis.
function closeInline(paragraph) {
  let suffix = "";
  const ticks = (paragraph.match(/`/g) ?? []).length;
  if (ticks % 2 === 1) suffix += "`";
  // `**` inside a code span does not count; strip spans first.
  const outsideCode = (paragraph + suffix).replace(/`[^`]*`/g, "");
  const strong = (outsideCode.match(/\*\*/g) ?? []).length;
  if (strong % 2 === 1) {
    // "**" with nothing after it yet would render as a literal; drop it rather than close it.
    if (/\*\*\s*$/.test(paragraph)) return { trim: paragraph.length - paragraph.replace(/\*\*\s*$/, "").length, suffix };
    suffix += "**";
  }
  return { trim: 0, suffix };
}

/**
 * Returns Markdown that renders the way `text` will once complete: an unclosed code fence is closed,
 * a table whose delimiter row has not arrived gets one, and an open code span or `**` is closed.
 * Text that is already complete comes back unchanged.
 */
export function repairMarkdown(text) {
  if (text === "") return text;
  let lines = text.split("\n");
  const fence = openFence(lines);
  if (fence !== null) {
    return `${text}${text.endsWith("\n") ? "" : "\n"}${fence}`;
  }
  lines = repairTable(lines);
  let repaired = lines.join("\n");
  // Only the last paragraph can still be open; earlier ones are final.
  const start = repaired.lastIndexOf("\n\n") + 1;
  const paragraph = repaired.slice(start);
  if (!TABLE_ROW.test(paragraph.split("\n").at(-1) ?? "")) {
    const { trim, suffix } = closeInline(paragraph);
    if (trim > 0) repaired = repaired.slice(0, repaired.length - trim);
    repaired += suffix;
  }
  return repaired;
}
