// The organization's usage report (GET /api/chatbot/usage/report) as <chatbot-activity> shows it: every day
// of the range (days without use as zero), the users by tokens, and the chart's geometry and its words.
// Pure: unit tested in Node.

export const MAX_DAYS = 92;
export const DEFAULT_DAYS = 30;
/** How far back the server keeps an organization's usage, today included (older ranges are refused). */
export const KEPT_DAYS = 100;
const DAY_MS = 86_400_000;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A `YYYY-MM-DD` date as UTC midnight in ms, or NaN when it is not a real date. */
function dayMs(date) {
  if (!ISO_DATE.test(String(date ?? ""))) return NaN;
  const ms = Date.parse(`${date}T00:00:00Z`);
  return Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== date ? NaN : ms;
}

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

const utcToday = (now) => Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());

/** The range shown first: the last `DEFAULT_DAYS` UTC days up to today (the ledger's days are UTC). */
export function defaultRange(now = new Date()) {
  const today = utcToday(now);
  return { from: isoDay(today - (DEFAULT_DAYS - 1) * DAY_MS), to: isoDay(today) };
}

/** The oldest day the server still keeps, `YYYY-MM-DD`. */
export function earliestDay(now = new Date()) {
  return isoDay(utcToday(now) - (KEPT_DAYS - 1) * DAY_MS);
}

/** Why `from`–`to` cannot be asked for (the server's own rules), or null when it can. */
export function rangeProblem(from, to, now = new Date()) {
  const start = dayMs(from);
  const end = dayMs(to);
  if (Number.isNaN(start)) return "Choose a start date.";
  if (Number.isNaN(end)) return "Choose an end date.";
  if (end < start) return "The start date must be on or before the end date.";
  if ((end - start) / DAY_MS + 1 > MAX_DAYS) return `Choose at most ${MAX_DAYS} days.`;
  const earliest = earliestDay(now);
  if (start < dayMs(earliest)) return `Usage is kept ${KEPT_DAYS} days: choose a start on or after ${earliest}.`;
  return null;
}

/** Every date from `from` to `to`, inclusive. */
export function datesBetween(from, to) {
  const dates = [];
  for (let ms = dayMs(from); ms <= dayMs(to); ms += DAY_MS) dates.push(isoDay(ms));
  return dates;
}

const number = (value) => (Number.isFinite(Number(value)) ? Number(value) : 0);

/**
 * The report as the view draws it: `days` (every date of the range, in order, zero where nothing was
 * used), `users` (most tokens first, then by name), the totals, and `busiest` (the day with most tokens).
 */
export function reportView(report) {
  const byDate = new Map((report?.days ?? []).map((day) => [String(day.date), day]));
  const days = datesBetween(report.from, report.to).map((date) => ({
    date,
    tokens: number(byDate.get(date)?.tokens),
    requests: number(byDate.get(date)?.requests),
  }));
  const users = (report?.users ?? [])
    .map((user) => ({
      userId: String(user.user_id ?? ""),
      name: String(user.name || user.user_id || ""),
      tokens: number(user.tokens),
      requests: number(user.requests),
      toolCalls: number(user.tool_calls),
    }))
    .sort((a, b) => b.tokens - a.tokens || a.name.localeCompare(b.name));
  const busiest = days.reduce((best, day) => (day.tokens > (best?.tokens ?? 0) ? day : best), null);
  return {
    organization: String(report?.organization?.name || report?.organization?.id || ""),
    from: String(report.from),
    to: String(report.to),
    days,
    users,
    totalTokens: days.reduce((sum, day) => sum + day.tokens, 0),
    totalRequests: days.reduce((sum, day) => sum + day.requests, 0),
    busiest,
  };
}

/** A date as people read it ("3 Mar 2026"), in UTC like the ledger's days. */
export function formatDay(date, { locale } = {}) {
  const ms = dayMs(date);
  if (Number.isNaN(ms)) return String(date ?? "");
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeZone: "UTC" }).format(new Date(ms));
}

/** A count with the reader's digit grouping ("12,340"). */
export function formatCount(value, { locale } = {}) {
  return new Intl.NumberFormat(locale).format(number(value));
}

/** The chart in one sentence, for those who cannot see it. */
export function chartSummary(view, options = {}) {
  const range = `${formatDay(view.from, options)} to ${formatDay(view.to, options)}`;
  if (view.totalTokens === 0) return `Tokens per day, ${range}: none used.`;
  const busiest = `${formatDay(view.busiest.date, options)} (${formatCount(view.busiest.tokens, options)})`;
  return `Tokens per day, ${range}: ${formatCount(view.totalTokens, options)} tokens in ${formatCount(view.totalRequests, options)} requests; the busiest day was ${busiest}.`;
}

/**
 * The bars of a `width` × `height` chart (the bottom `axis` pixels left for the labels): one per day,
 * as tall as its share of the busiest day, with a gap between bars when there is room.
 */
export function bars(days, { width, height, axis = 0 }) {
  const plot = height - axis;
  const max = Math.max(0, ...days.map((day) => day.tokens));
  const slot = days.length ? width / days.length : 0;
  const gap = slot >= 6 ? Math.min(slot * 0.2, 4) : 0;
  return days.map((day, index) => {
    const barHeight = max === 0 ? 0 : Math.max(day.tokens > 0 ? 1 : 0, (day.tokens / max) * plot);
    return { ...day, x: index * slot + gap / 2, width: Math.max(slot - gap, 0.5), y: plot - barHeight, height: barHeight };
  });
}
