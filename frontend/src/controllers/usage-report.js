// UsageReportController: the organization's usage report for <chatbot-activity>, for a range of days the
// user picks (the last 30 by default). A range the server would refuse is explained without asking it; a
// 403 means the report is not for the caller; an answer to an older question is dropped.
import { ApiError } from "../api.js";
import { defaultRange, rangeProblem, reportView } from "../report.js";

export class UsageReportController {
  #api;
  #onChange;
  #now;
  #asked = 0;

  /** `api()` returns the current ChatApi (or null); `onChange(state)` hears every change; `now()` dates the
   * default range and the oldest day the server keeps. */
  constructor({ api, onChange = () => {}, now = () => new Date() }) {
    this.#api = api;
    this.#onChange = onChange;
    this.#now = now;
    this.state = { ...defaultRange(now()), view: null, loading: false, error: null, problem: null, forbidden: false };
  }

  /** Loads the report of `from`–`to` (the range shown when omitted). */
  async load(from = this.state.from, to = this.state.to) {
    const asked = ++this.#asked;
    const problem = rangeProblem(from, to, this.#now());
    if (problem) return this.#set({ from, to, problem, loading: false });
    this.#set({ from, to, problem: null, loading: true, error: null });
    try {
      const report = await this.#api().usageReport({ from, to });
      if (asked === this.#asked) this.#set({ view: reportView(report), loading: false, forbidden: false });
    } catch (error) {
      if (asked !== this.#asked) return;
      const refused = error instanceof ApiError;
      this.#set({
        loading: false,
        view: null,
        forbidden: refused && error.status === 403,
        // The server names what is wrong with the range: say it where the dates are picked.
        problem: refused && error.status === 400 ? error.message : null,
        error: refused && (error.status === 403 || error.status === 400) ? null : error,
      });
    }
  }

  /** Forgets the report (the signed-in user changed, or none is signed in). */
  reset() {
    this.#asked += 1;
    this.#set({ view: null, loading: false, error: null, problem: null, forbidden: false });
  }

  #set(changes) {
    this.state = { ...this.state, ...changes };
    this.#onChange(this.state);
  }
}
