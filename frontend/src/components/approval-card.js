// ChatbotApprovalCard: a tool call that waits for the user's approval — what it would do in plain words,
// its input behind a disclosure, and Approve / Deny. Once decided it shows the outcome: the tool's result
// as other calls show it, or "Declined".
import { h } from "../dom.js";
import { pretty } from "../format.js";
import { toolLabel } from "../labels.js";
import { statusIcon, textSection } from "./tool-call.js";

let cards = 0;

// What the card says above the summary, and under the buttons, in each state.
function describe(part, replyStatus, others) {
  const decided = part.decision === true ? "You approved this." : "You denied this.";
  switch (part.status) {
    case "awaiting":
      if (part.decision === null) return { badge: "Approval needed", note: replyStatus === "awaiting" ? "" : "Waiting…" };
      if (replyStatus === "awaiting") return { badge: "Approval needed", note: `${decided} Decide the other ${others === 1 ? "action" : `${others} actions`} to continue.` };
      if (replyStatus === "streaming") return { badge: part.decision ? "Approved" : "Denied", note: part.decision ? "Approved. Carrying it out…" : "Denied. Telling the assistant…" };
      // The reply ended before the outcome arrived (connection lost, stopped): the server knows it.
      return { badge: part.decision ? "Approved" : "Denied", note: "The outcome did not arrive. Reopen the conversation to see it." };
    case "done":
      return { badge: "Approved", note: toolLabel(part.name, "done") };
    case "error":
      return { badge: "Approved", note: toolLabel(part.name, "error") };
    case "declined":
      return { badge: "Declined", note: "Not carried out." };
    default:
      return { badge: "Not carried out", note: "Stopped before it was decided" };
  }
}

export class ChatbotApprovalCard {
  /** `onDecide(callId, approved)` is the user's Approve (true) or Deny (false). */
  constructor({ onDecide }) {
    const id = `cb-approval-${++cards}`;
    this.part = null;
    this.replyStatus = null;
    this.badge = h("span", { class: "cb-approval-badge" });
    this.summary = h("p", { id: `${id}-summary`, class: "cb-approval-summary" });
    this.input = textSection("Input");
    this.result = textSection("Result");
    this.approve = h("button", { type: "button", class: "cb-approve", "aria-describedby": `${id}-summary`, onclick: () => onDecide(this.part.id, true) }, "Approve");
    this.deny = h("button", { type: "button", class: "cb-deny", "aria-describedby": `${id}-summary`, onclick: () => onDecide(this.part.id, false) }, "Deny");
    this.actions = h("div", { class: "cb-approval-actions" }, this.approve, this.deny);
    this.status = h("span", { class: "cb-tool-status", "aria-hidden": "true" });
    this.noteText = h("span");
    this.note = h("p", { class: "cb-approval-note" }, this.status, this.noteText);
    this.el = h(
      "div",
      { class: "cb-approval", role: "group", "aria-labelledby": `${id}-summary`, tabindex: "-1" },
      this.badge,
      this.summary,
      h("details", { class: "cb-approval-details" }, h("summary", { class: "cb-approval-more" }, "Details"), h("div", { class: "cb-tool-body" }, this.input.el, this.result.el)),
      this.actions,
      this.note,
    );
  }

  /** Whether the user can still decide this call now (it waits, undecided, in a reply that waits). */
  get open() {
    return this.part?.status === "awaiting" && this.part.decision === null && this.replyStatus === "awaiting";
  }

  /**
   * Draws the call `part` of a reply in `replyStatus`; `others` is how many other calls of the reply
   * the user has still to decide.
   */
  update(part, replyStatus, others) {
    if (part === this.part && replyStatus === this.replyStatus && others === this.others) return;
    const previous = this.part;
    this.part = part;
    this.replyStatus = replyStatus;
    this.others = others;
    const { badge, note } = describe(part, replyStatus, others);
    this.el.dataset.status = part.status;
    this.el.dataset.tool = part.name;
    this.badge.textContent = badge;
    this.summary.textContent = part.summary || toolLabel(part.name, "awaiting");
    if (!previous || previous.input !== part.input) this.input.pre.textContent = pretty(part.input);
    this.result.el.hidden = part.result === null;
    if (part.result !== null) this.result.pre.textContent = pretty(part.result);
    // The buttons stay while the call waits (disabled once decided, or while the reply is not waiting),
    // so focus does not vanish under the user's click; afterwards the outcome replaces them.
    this.actions.hidden = part.status !== "awaiting";
    this.approve.disabled = this.deny.disabled = !this.open;
    this.note.hidden = note === "";
    this.noteText.textContent = note;
    const working = part.status === "awaiting" && part.decision !== null && replyStatus === "streaming";
    this.status.hidden = part.status === "awaiting" && !working;
    this.status.replaceChildren(statusIcon(working ? "running" : part.status));
  }

  /** Moves focus to Approve when the call can still be decided, else to the card (its outcome). */
  focus() {
    (this.open ? this.approve : this.el).focus();
  }
}
