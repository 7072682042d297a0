// ConversationController: the traffic of the conversation on screen. It sends a message and streams the
// reply into the store, and handles Stop, Retry and New chat. It is the one place that knows whether a
// reply is in flight ("busy": from the moment a message is accepted until its stream has ended), and it
// ends that stream when the sheet leaves the page.
import { ApiError, StreamInterrupted, describeFailure } from "../api.js";
import { toHistory } from "../conversation.js";

// After Stop, the server may still hold this user's lock for a moment: a 409 within this window is
// ours, and the next message waits and tries again instead of failing.
const STOP_GRACE_MS = 5000;
const LOCK_RETRY_MS = 300;
// A send waits this long at most for the server to acknowledge the previous Stop's cancel.
const CANCEL_WAIT_MS = 2000;

// Resolves after `ms`, or as soon as `signal` aborts (a stopped reply does not wait out its retry).
function delay(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

export class ConversationController {
  // {abort: AbortController, replyId: string | null} while a reply is in flight; replyId stays null
  // until the turn has started (the message is still being prepared).
  #flight = null;
  #connected = false;
  #stoppedAt = -Infinity;
  #cancelling = null;
  #store;
  #api;
  #prepare;
  #onBusy;
  #onTurn;
  #now;
  #sleep;

  /**
   * `store` is the chat store; `api()` returns the current ChatApi; `prepare()` runs before each message
   * is sent (it makes sure the right user's conversation is loaded); `onBusy(busy)` hears every change of
   * `busy`; `onTurn(replyId)` hears each new turn. `now` and `sleep` are injectable for tests.
   */
  constructor({ store, api, prepare = async () => {}, onBusy = () => {}, onTurn = () => {}, now = () => Date.now(), sleep = delay }) {
    this.#store = store;
    this.#api = api;
    this.#prepare = prepare;
    this.#onBusy = onBusy;
    this.#onTurn = onTurn;
    this.#now = now;
    this.#sleep = sleep;
  }

  /** Whether a reply is in flight. */
  get busy() {
    return this.#flight !== null;
  }

  /** The id of the reply streaming now, or null (none, or the message is still being prepared). */
  get replyId() {
    return this.#flight?.replyId ?? null;
  }

  /** Sends a message and streams the reply; ignored while busy, for blank text, or when the assistant is off. */
  async send(text) {
    const message = String(text ?? "").trim();
    if (!message || this.busy || this.#store.getState().enabled === false) return;
    const flight = { abort: new AbortController(), replyId: null };
    this.#setFlight(flight);
    try {
      await this.#prepare();
      await this.#settleCancel();
      const history = toHistory(this.#store.getState().messages);
      flight.replyId = this.#store.getState().startTurn(message);
      this.#onTurn(flight.replyId);
      await this.#stream(flight.replyId, message, history, flight.abort.signal);
    } finally {
      this.#setFlight(null);
    }
  }

  /** Stops the reply in flight: aborts the stream and tells the server to cancel; the partial answer stays. */
  stop() {
    const flight = this.#flight;
    if (!flight) return;
    this.#stoppedAt = this.#now();
    this.#cancelling = this.#api().cancel().catch(() => null);
    flight.abort.abort();
  }

  /**
   * Stops the reply streaming into the conversation on screen, which is being replaced (another user
   * signed in). A message still being prepared goes on: it is sent for the user now signed in.
   */
  abandon() {
    if (this.replyId) this.stop();
  }

  /** Removes a failed reply and its question, and sends the question again. */
  async retry(replyId) {
    if (this.busy) return;
    const question = this.#store.getState().takeBack(replyId);
    if (question !== null) await this.send(question);
  }

  /** Starts a new chat, stopping a reply that is still streaming. */
  newChat() {
    this.stop();
    this.#store.getState().clear();
  }

  hostConnected() {
    this.#connected = true;
  }

  /** The sheet left the page: nobody is there to read the reply, so it ends as Stop would end it. */
  hostDisconnected() {
    this.#connected = false;
    // Moving the sheet elsewhere in the page disconnects and reconnects it in one go: only a sheet
    // still out of the page once that is over has really left.
    queueMicrotask(() => {
      if (!this.#connected) this.stop();
    });
  }

  #setFlight(flight) {
    this.#flight = flight;
    this.#onBusy(this.busy);
  }

  async #stream(replyId, message, history, signal) {
    const state = this.#store.getState();
    for (;;) {
      try {
        await this.#api().send({ message, history, signal, onEvent: (event) => state.applyEvent(replyId, event) });
        return;
      } catch (error) {
        if (!signal.aborted && !this.#isOwnLock(error)) return this.#fail(replyId, error);
        if (!signal.aborted) await this.#sleep(LOCK_RETRY_MS, signal);
        if (signal.aborted) return state.finish(replyId, "stopped");
      }
    }
  }

  // A 409 just after Stop is the stopped request still letting go of the lock, not another tab.
  #isOwnLock(error) {
    return error instanceof ApiError && error.status === 409 && this.#now() - this.#stoppedAt < STOP_GRACE_MS;
  }

  #fail(replyId, error) {
    const state = this.#store.getState();
    if (error instanceof ApiError && error.code === "chatbot_disabled") state.setEnabled(false);
    state.finish(replyId, error instanceof StreamInterrupted ? "interrupted" : "error", describeFailure(error));
  }

  // The server releases the lock only once the cancelled request has wound down: waiting for the cancel's
  // answer first makes the next message's 409 (and its retries) rare.
  async #settleCancel() {
    const pending = this.#cancelling;
    if (!pending) return;
    this.#cancelling = null;
    await Promise.race([pending, this.#sleep(CANCEL_WAIT_MS)]);
  }
}
