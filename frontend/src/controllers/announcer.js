// Announcer: what a screen reader hears of the conversation, through a polite live region: each tool
// call's progress, and whole sentences of the reply as they complete. A reply restored from storage is
// not news, so only a reply seen streaming is read out.
import { nextAnnouncement } from "../announce.js";
import { toolLabel } from "../labels.js";

export class Announcer {
  #reply = { id: null, length: 0, tools: new Map() };
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
    if (!heard) return;
    for (const part of reply.parts) {
      if (part.kind !== "tool" || heard.tools.get(part.id) === part.status) continue;
      heard.tools.set(part.id, part.status);
      this.#say(toolLabel(part.name, part.status));
    }
    const text = heard.length === Infinity ? null : this.#textOf(reply.id);
    if (text === null) return;
    const final = reply.status !== "streaming";
    const next = nextAnnouncement(text, heard.length, final);
    if (next) {
      heard.length = next.upTo;
      if (next.text) this.#say(next.text);
    }
    if (final) heard.length = Infinity;
  }

  // What was already said of this reply; null for a reply that is not read out at all.
  #heard(reply) {
    if (this.#reply.id !== reply.id) {
      const live = reply.status === "streaming";
      this.#reply = { id: reply.id, length: live ? 0 : Infinity, tools: new Map() };
      if (!live) return null;
    }
    return this.#reply;
  }
}
