// Announcer: what a screen reader hears of the conversation, through a polite live region: each tool
// call's progress (a call waiting for approval included), and whole sentences of the reply as they
// complete. A reply shown from the server is not news, so only what is seen streaming is read out: a
// reply that streams on (after approvals, or re-attached) is read from where it was.
import { nextAnnouncement } from "../announce.js";
import { toolLabel } from "../labels.js";

export class Announcer {
  // The reply being heard: how much of its text was read out, each tool's last status said, and
  // whether it is being heard now (streaming).
  #reply = { id: null, length: 0, tools: new Map(), live: false };
  #say;
  #textOf;

  /**
   * `say(text)` puts one announcement in the live region; `textOf(replyId)` is the reply's text as
   * rendered (what the reader sees, without Markdown), or null before it is on screen.
   */
  constructor({ say, textOf }) {
    this.#say = say;
    this.#textOf = textOf;
  }

  /** Announces what is new in the conversation's last reply since the previous call. */
  update(messages) {
    const reply = messages.at(-1);
    if (!reply || reply.role !== "assistant") return;
    const heard = this.#heard(reply);
    if (!heard.live) return;
    for (const part of reply.parts) {
      if (part.kind !== "tool" || heard.tools.get(part.id) === part.status) continue;
      heard.tools.set(part.id, part.status);
      this.#say(toolLabel(part.name, part.status));
    }
    const text = this.#textOf(reply.id);
    if (text === null) return;
    const final = reply.status !== "streaming";
    const next = nextAnnouncement(text, heard.length, final);
    if (next) {
      heard.length = next.upTo;
      if (next.text) this.#say(next.text);
    }
    if (final) heard.live = false;
  }

  // What was already said of this reply. A reply first seen finished is marked as heard in full (its
  // text and tools) so that, should it stream on, only what is new is read.
  #heard(reply) {
    const streaming = reply.status === "streaming";
    if (this.#reply.id !== reply.id) {
      this.#reply = { id: reply.id, length: 0, tools: new Map(), live: streaming };
      if (!streaming) this.#catchUp(reply);
    } else if (streaming && !this.#reply.live) {
      this.#reply.live = true;
    }
    return this.#reply;
  }

  #catchUp(reply) {
    this.#reply.length = (this.#textOf(reply.id) ?? "").trimEnd().length;
    for (const part of reply.parts) if (part.kind === "tool") this.#reply.tools.set(part.id, part.status);
  }
}
