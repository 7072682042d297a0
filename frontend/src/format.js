// How values read on screen: JSON laid out for people, and instants in the reader's local time.

/** A tool's input or result as indented JSON when it is JSON, else as it is. */
export function pretty(value) {
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value ?? {}, null, 2);
}

/** An ISO instant as a date and time in the reader's local time ("12 Mar 2026, 14:05"), or "" when unreadable. */
export function formatLocalTime(iso, { locale, timeZone } = {}) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return "";
  return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone }).format(when);
}
