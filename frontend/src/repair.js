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

// A delimiter row still arriving: only pipes, dashes, colons and spaces, e.g. "|---|:-".
function isPartialDelimiterRow(line) {
  return /^ {0,3}\|[\s|:-]*$/.test(line) && line.includes("-");
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

function repairTable(lines) {
  const last = lines.length - 1;
  const line = lines[last];
  const previous = last > 0 ? lines[last - 1] : "";
  const beforePrevious = last > 1 ? lines[last - 2] : "";
  // A header row alone ("| a | b |"): add the delimiter row that must follow, so it renders as a table.
  const pipes = (line.match(/(?<!\\)\|/g) ?? []).length;
  if (TABLE_ROW.test(line) && pipes >= 2 && !isDelimiterRow(line) && !TABLE_ROW.test(previous)) {
    const count = tableCells(line).length;
    return [...lines, `|${" --- |".repeat(count)}`];
  }
  // The delimiter row itself, half written ("| a | b |\n|---|-"): complete it from the header.
  if (isPartialDelimiterRow(line) && TABLE_ROW.test(previous) && !TABLE_ROW.test(beforePrevious)) {
    const count = tableCells(previous).length;
    return [...lines.slice(0, last), `|${" --- |".repeat(count)}`];
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
