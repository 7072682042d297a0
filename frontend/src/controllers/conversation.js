// ConversationController: the traffic of the conversation on screen. It sends a message and streams the
// reply into the store, sends the user's approval decisions and streams the rest of the reply, gets back
// to a reply whose stream broke (re-attach), opens a conversation the server keeps, and handles Stop,
// Retry and New chat. It is the one place that knows whether a reply is in flight ("busy": from the
// moment a message is accepted until its stream has ended), and it ends that stream when the sheet leaves
// the page.
import { ApiError, StreamInterrupted, describeFailure } from "../api.js";
import { approvalsToSend } from "../approvals.js";
import { continuesReply } from "../conversation.js";
import { RECONNECT_DELAYS_MS, reconnect } from "../reconnection.js";

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

// The request a broken stream belonged to is not running on the server: it never arrived, or it ended.
class NotRunning extends Error {}

export class ConversationController {
  // {abort: AbortController, replyId: string | null, done: Promise} while a reply is in flight; replyId
  // stays null until the turn has started (the message is still being prepared).
  #flight = null;
  // Counts the conversations put on screen: an answer that arrives for one no longer shown is dropped.
  #generation = 0;
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
  #delays;

  /**
   * `store` is the chat store; `api()` returns the current ChatApi; `prepare()` runs before each message
   * is sent (it makes sure the right user's conversation is loaded); `onBusy(busy)` hears every change of
   * `busy`; `onTurn(replyId)` hears each new turn or conversation shown. `now`, `sleep` and
   * `reconnectDelays` (the pauses before each re-attach attempt) are injectable for tests.
   */
  constructor({ store, api, prepare = async () => {}, onBusy = () => {}, onTurn = () => {}, now = () => Date.now(), sleep = delay, reconnectDelays = RECONNECT_DELAYS_MS }) {
    this.#store = store;
    this.#api = api;
    this.#prepare = prepare;
    this.#onBusy = onBusy;
    this.#onTurn = onTurn;
    this.#now = now;
    this.#sleep = sleep;
    this.#delays = reconnectDelays;
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
    await this.#fly(async (flight) => {
      await this.#prepare();
      await this.#settleCancel();
      const state = this.#store.getState();
      const conversationId = state.conversationId;
      flight.replyId = state.startTurn(message);
      this.#onTurn(flight.replyId);
      await this.#run(flight, (onEvent, signal) => this.#api().send({ message, conversationId, signal, onEvent }));
    });
  }

  /**
   * Records the user's decision on the waiting call `callId` of reply `replyId`. Once every waiting call
   * of the reply is decided, sends them all in one request and streams the rest of the reply into it.
   */
  async decide(replyId, callId, approved) {
    if (this.busy) return;
    const state = this.#store.getState();
    state.decide(replyId, callId, approved);
    const reply = this.#reply(replyId);
    const approvals = reply ? approvalsToSend(reply) : null;
    if (!approvals) return;
    const conversationId = state.conversationId;
    await this.#fly(async (flight) => {
      flight.replyId = replyId;
      state.resumeReply(replyId);
      await this.#settleCancel();
      // Refused decisions (the calls expired, another tab decided them) leave the cards to decide again.
      const refused = (error) => state.reopenApprovals(replyId, describeFailure(error));
      await this.#run(flight, (onEvent, signal) => this.#api().decide({ conversationId, approvals, signal, onEvent }), refused);
    });
  }

  /** Resolves once the reply in flight, if any, has ended. */
  get settled() {
    return this.#flight?.done ?? Promise.resolve();
  }

  /**
   * Puts the conversation `conversationId` on screen from the server, stopping a reply that streams in
   * another one. An answer the server is still writing in it is re-attached and streams on (in flight
   * after this resolves: see `settled`). Resolves true once shown (or when a newer switch overtook it),
   * false when the server does not know it (404); other failures are thrown.
   */
  async open(conversationId) {
    const generation = await this.#leave();
    let detail;
    try {
      detail = await this.#api().conversation(conversationId);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return generation !== this.#generation;
      throw error;
    }
    if (generation !== this.#generation) return true;
    this.#store.getState().showConversation(detail);
    this.#onTurn(null);
    if (detail.active_request && !this.busy) this.#follow();
    return true;
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
    this.#generation += 1;
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
    this.#generation += 1;
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

  // Runs `body(flight)` as the reply in flight; busy until it is over.
  #fly(body) {
    const flight = { abort: new AbortController(), replyId: null, done: null };
    this.#setFlight(flight);
    flight.done = (async () => {
      try {
        await body(flight);
      } finally {
        if (this.#flight === flight) this.#setFlight(null);
      }
    })();
    return flight.done;
  }

  // Another conversation goes on screen: a streaming reply is stopped (and has ended once this resolves).
  async #leave() {
    const generation = ++this.#generation;
    const flight = this.#flight;
    if (flight?.replyId) {
      this.stop();
      await flight.done;
    }
    return generation;
  }

  #reply(replyId) {
    return this.#store.getState().messages.find((m) => m.id === replyId) ?? null;
  }

  // Streams one request into the flight's reply: `request(onEvent, signal)` resolves with the final event.
  async #run(flight, request, refused = (error) => this.#fail(flight.replyId, error)) {
    const { signal } = flight.abort;
    const state = this.#store.getState();
    for (;;) {
      try {
        await request(this.#applier(flight), signal);
        return;
      } catch (error) {
        if (signal.aborted) return state.finish(flight.replyId, "stopped");
        if (error instanceof StreamInterrupted) return this.#reattach(flight, { cause: error, refused });
        if (!this.#isOwnLock(error)) return refused(error);
        await this.#sleep(LOCK_RETRY_MS, signal);
        if (signal.aborted) return state.finish(flight.replyId, "stopped");
      }
    }
  }

  // Events go into the flight's reply until it is stopped (a stream may deliver a last buffered event).
  #applier(flight) {
    return (event) => {
      if (!flight.abort.signal.aborted) this.#store.getState().applyEvent(flight.replyId, event);
    };
  }

  // The page was reloaded while the server wrote an answer: replay it from its start, into the reply
  // whose approved calls it carries out, or into a new one.
  #follow() {
    return this.#fly(async (flight) => {
      const state = this.#store.getState();
      const last = state.messages.at(-1);
      if (continuesReply(last)) {
        state.resumeReply(last.id);
        flight.replyId = last.id;
      } else {
        flight.replyId = state.startReply();
      }
      this.#onTurn(flight.replyId);
      await this.#reattach(flight, { known: true, delays: [0, ...this.#delays] });
    });
  }

  /**
   * Gets back to the flight's request after its stream broke (`cause`): asks for its events after the
   * last one the reply applied, a few times with pauses. `known` says the request is running on the
   * server; otherwise, when none of its events had arrived, the server is asked first (it may never have
   * received it, and the conversation's latest request would then be an older one). `refused(error)`
   * handles a request that turns out not to be running.
   */
  async #reattach(flight, { cause = null, known = false, delays = this.#delays, refused = (error) => this.#fail(flight.replyId, error) }) {
    const { signal } = flight.abort;
    const state = this.#store.getState();
    const conversationId = state.conversationId;
    // A new conversation whose first event never came has no id to come back to.
    if (!conversationId) return refused(cause);
    const generation = this.#generation;
    let confirmed = known || (this.#reply(flight.replyId)?.lastEventId ?? 0) > 0;
    const attach = async () => {
      if (!confirmed) {
        const detail = await this.#api().conversation(conversationId).catch((error) => {
          throw error instanceof ApiError ? error : new StreamInterrupted(error);
        });
        if (!detail?.active_request) throw new NotRunning();
        confirmed = true;
      }
      const after = this.#reply(flight.replyId)?.lastEventId ?? 0;
      return this.#api().resume({ conversationId, after, signal, onEvent: this.#applier(flight) });
    };
    let final;
    try {
      final = await reconnect({ attach, sleep: this.#sleep, signal, delays });
    } catch (error) {
      if (error instanceof NotRunning) return refused(cause ?? new StreamInterrupted(null));
      return this.#fail(flight.replyId, error);
    }
    if (signal.aborted) return state.finish(flight.replyId, "stopped");
    // 204: the request ended and its events are gone; what the server kept is the final state.
    if (final === null) await this.#refresh(conversationId, generation, flight.replyId);
  }

  // Shows the conversation as the server has it now, unless another one went on screen meanwhile.
  async #refresh(conversationId, generation, replyId) {
    try {
      const detail = await this.#api().conversation(conversationId);
      if (generation === this.#generation) this.#store.getState().showConversation(detail);
    } catch (error) {
      this.#fail(replyId, error instanceof ApiError ? error : new StreamInterrupted(error));
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
