// ChatbotUsageReport: the organization's usage for a range of days — a bar chart of tokens per day (a small
// SVG, its content also said in words), a table of people by tokens, and the date range picker. Hidden from
// a caller who may not see it.
import { h, icon } from "../dom.js";
import { bars, chartSummary, earliestDay, formatCount, formatDay } from "../report.js";

const SVG_NS = "http://www.w3.org/2000/svg";
const CHART = { width: 600, height: 160 };

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

function chartOf(view, captionId) {
  const drawn = bars(view.days, CHART).map((bar) =>
    svg(
      "rect",
      { x: bar.x, y: bar.y, width: bar.width, height: bar.height, class: "cb-report-bar", "data-date": bar.date, "data-tokens": bar.tokens },
      svg("title", {}, `${formatDay(bar.date)}: ${formatCount(bar.tokens)} tokens, ${formatCount(bar.requests)} requests`),
    ),
  );
  // The bars stretch with the element's width; the labels are HTML around them, so text never distorts.
  return svg(
    "svg",
    { viewBox: `0 0 ${CHART.width} ${CHART.height}`, preserveAspectRatio: "none", role: "img", "aria-labelledby": captionId, class: "cb-report-svg" },
    svg("line", { x1: 0, y1: CHART.height - 0.5, x2: CHART.width, y2: CHART.height - 0.5, class: "cb-report-baseline" }),
    ...drawn,
  );
}

export class ChatbotUsageReport {
  /** `id` prefixes the ids inside; `onRange(from, to)` is the user asking for other days. */
  constructor({ id, onRange }) {
    this.id = id;
    this.heading = h("h2", { id: `${id}-heading`, class: "cb-activity-heading", text: "Usage" });
    this.from = h("input", { id: `${id}-from`, type: "date", class: "cb-activity-input", required: true, "aria-describedby": `${id}-problem` });
    this.to = h("input", { id: `${id}-to`, type: "date", class: "cb-activity-input", required: true, "aria-describedby": `${id}-problem` });
    const form = h(
      "form",
      { class: "cb-activity-filter cb-report-range", "aria-label": "Days of the report", novalidate: true },
      h("label", { for: `${id}-from`, text: "From" }),
      this.from,
      h("label", { for: `${id}-to`, text: "To" }),
      this.to,
      h("button", { type: "submit", class: "cb-activity-button" }, icon("retry"), "Show"),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      onRange(this.from.value, this.to.value);
    });
    this.problem = h("p", { id: `${id}-problem`, class: "cb-report-problem", role: "alert", hidden: true });
    this.status = h("p", { class: "cb-activity-status", role: "status" });
    this.error = h("div", { class: "cb-error", role: "alert", hidden: true }, h("div", { class: "cb-error-text" }, h("strong", { text: "Couldn't load the usage" }), h("span", { text: "Check your connection and try again." })), h("button", { type: "button", class: "cb-retry", onclick: () => onRange(this.from.value, this.to.value) }, icon("retry"), "Try again"));
    this.content = h("div", { class: "cb-report-content" });
    this.el = h(
      "section",
      { class: "cb-activity cb-report", "aria-labelledby": `${id}-heading`, "aria-busy": "false" },
      h("div", { class: "cb-activity-header" }, this.heading, form),
      this.problem,
      this.status,
      this.error,
      this.content,
    );
    this.from.max = this.to.max = new Date().toISOString().slice(0, 10);
    this.from.min = this.to.min = earliestDay();
  }

  /** Draws the UsageReportController's state. */
  update({ from, to, view, loading, error, problem, forbidden }) {
    const root = this.el.getRootNode?.();
    if (root?.activeElement !== this.from) this.from.value = from;
    if (root?.activeElement !== this.to) this.to.value = to;
    this.problem.textContent = problem ?? "";
    this.problem.hidden = !problem;
    for (const input of [this.from, this.to]) input.setAttribute("aria-invalid", String(Boolean(problem)));
    // Not for the caller: the section goes, and the audit trail beside it says whom it is for.
    this.el.hidden = Boolean(forbidden);
    this.error.hidden = !error;
    this.status.textContent = loading ? "Loading…" : "";
    this.status.hidden = !loading;
    this.el.setAttribute("aria-busy", String(Boolean(loading)));
    if (!loading) this.content.replaceChildren(...(view && !forbidden ? this.#draw(view) : []));
  }

  #draw(view) {
    const captionId = `${this.id}-chart-caption`;
    const max = Math.max(0, ...view.days.map((day) => day.tokens));
    const chart = h(
      "figure",
      { class: "cb-report-chart" },
      h("figcaption", { id: captionId, class: "cb-report-caption", text: chartSummary(view) }),
      h("div", { class: "cb-report-scale", "aria-hidden": "true", text: `${formatCount(max)} tokens` }),
      chartOf(view, captionId),
      h("div", { class: "cb-report-axis", "aria-hidden": "true" }, h("span", { text: formatDay(view.from) }), h("span", { text: formatDay(view.to) })),
    );
    const rows = view.users.map((user) =>
      h(
        "tr",
        { "data-user": user.userId },
        h("th", { scope: "row", text: user.name }),
        h("td", { text: formatCount(user.tokens) }),
        h("td", { text: formatCount(user.requests) }),
        h("td", { text: formatCount(user.toolCalls) }),
      ),
    );
    const table = view.users.length
      ? h(
          "div",
          { class: "cb-activity-scroll", tabindex: "0", role: "region", "aria-label": "People by tokens, table" },
          h(
            "table",
            { class: "cb-report-table" },
            h("caption", { class: "cb-sr", text: `People by tokens, ${formatDay(view.from)} to ${formatDay(view.to)}` }),
            h("thead", {}, h("tr", {}, ["Person", "Tokens", "Requests", "Tool calls"].map((name) => h("th", { scope: "col", text: name })))),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "cb-activity-status", text: "Nobody used the assistant on these days." });
    return [chart, table];
  }
}
