// The chatbot's HTTP API (README, "How it works"), and what each failure means to the person in front of the panel.
import { readEventStream } from "./sse.js";

/** A JSON error answered before any stream started (`{error, message, ...}` with its HTTP status). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.code = body?.error ?? "http_error";
    this.body = body ?? {};
    this.retryAfter = null;
  }
}

/** The connection dropped, or the stream ended without its final `done`/`error` event. */
export class StreamInterrupted extends Error {
  constructor(cause) {
    super("The connection was lost before the reply finished.");
    this.name = "StreamInterrupted";
    this.cause = cause;
  }
}

/** Talks to the API at `baseUrl` with a Bearer token from `getToken()`. */
export class ChatApi {
  constructor({ baseUrl, getToken, fetch: fetchImpl = globalThis.fetch.bind(globalThis) }) {
    this.baseUrl = String(baseUrl || "").replace(/\/+$/, "");
    this.getToken = getToken;
    this.fetch = fetchImpl;
  }

  /**
   * Fetch `path` with the Bearer token. A 401 gets one retry with a token asked for afresh
   * (`getToken({ forceRefresh: true })`): a token can expire between the host handing it out and the server
   * checking it, and the server checks the token before anything else, so nothing happened the first time.
   */
  async #authorized(path, init, accept) {
    let token = await this.getToken?.();
    for (let attempt = 0; ; attempt += 1) {
      const headers = { accept, ...init.headers };
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await this.fetch(this.baseUrl + path, { ...init, headers });
      if (response.status !== 401 || attempt > 0 || !this.getToken) return response;
      const fresh = await this.getToken({ forceRefresh: true });
      if (!fresh || fresh === token) return response;
      token = fresh;
    }
  }

  async #json(path, init = {}, { auth = true } = {}) {
    const response = auth
      ? await this.#authorized(path, init, "application/json")
      : await this.fetch(this.baseUrl + path, init);
    if (response.status === 204) return null;
    const body = await response.json().catch(() => null);
    if (!response.ok) throw apiError(response, body);
    return body;
  }

  /**
   * Opens an event stream at `path` and reads it to its end, calling `onEvent` per SSE event. Resolves
   * with the final event (`done` or `error`), or null when the server answered 204 (nothing to send);
   * throws ApiError (refused before streaming), StreamInterrupted (connection lost, or the stream ended
   * without its final event), or the AbortError of `signal`.
   */
  async #stream(path, init, signal, onEvent) {
    let response;
    try {
      response = await this.#authorized(path, { ...init, signal }, "text/event-stream");
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new StreamInterrupted(error);
    }
    if (response.status === 204) return null;
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      throw apiError(response, body);
    }
    let final = null;
    try {
      await readEventStream(response.body, (event) => {
        if (final) return;
        if (event.type === "done" || event.type === "error") final = event;
        onEvent(event);
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new StreamInterrupted(error);
    }
    if (!final) throw new StreamInterrupted(null);
    return final;
  }

  #post(body, signal, onEvent) {
    const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    return this.#stream("/api/chatbot/message", init, signal, onEvent);
  }

  /** `GET /api/chatbot/status` (no auth). */
  status() {
    return this.#json("/api/chatbot/status", {}, { auth: false });
  }

  /** `GET /api/chatbot/usage`: today's usage, and the caller's `role` and `permissions`. */
  usage() {
    return this.#json("/api/chatbot/usage");
  }

  /** `POST /api/chatbot/cancel`: stops this user's request in flight wherever it runs. */
  cancel() {
    return this.#json("/api/chatbot/cancel", { method: "POST" });
  }

  /**
   * `POST /api/chatbot/message`: sends `message` in the conversation `conversationId` (a new one when
   * absent), calling `onEvent` per SSE event. Resolves with the final event (see #stream for failures).
   */
  send({ message, conversationId, signal, onEvent }) {
    return this.#post(conversationId ? { message, conversation_id: conversationId } : { message }, signal, onEvent);
  }

  /**
   * `POST /api/chatbot/message` with `approvals` (`{toolUseId: boolean}`, every waiting call decided):
   * the reply goes on, streamed as `send` streams it.
   */
  decide({ conversationId, approvals, signal, onEvent }) {
    return this.#post({ conversation_id: conversationId, approvals }, signal, onEvent);
  }

  /**
   * `GET /api/chatbot/conversations/{id}/stream`: the events of the conversation's latest request after
   * event `after` (from its start when 0), then live ones until its final event. Resolves with the final
   * event, or null when there is nothing more to send (204: the request has ended).
   */
  resume({ conversationId, after = 0, signal, onEvent }) {
    const headers = after > 0 ? { "last-event-id": String(after) } : {};
    return this.#stream(`${conversationPath(conversationId)}/stream`, { headers }, signal, onEvent);
  }

  /** `GET /api/chatbot/conversations`: a page of the user's conversations, most recently updated first. */
  conversations({ limit, cursor } = {}) {
    return this.#json(`/api/chatbot/conversations${query({ limit, cursor })}`);
  }

  /** `GET /api/chatbot/conversations/{id}`: one conversation with its messages (404 when unknown). */
  conversation(conversationId) {
    return this.#json(conversationPath(conversationId));
  }

  /** `PATCH /api/chatbot/conversations/{id}`: renames it; resolves with its summary. */
  renameConversation(conversationId, title) {
    const init = { method: "PATCH", headers: { "content-type": "application/json" }, body: JSON.stringify({ title }) };
    return this.#json(conversationPath(conversationId), init);
  }

  /** `DELETE /api/chatbot/conversations/{id}`. */
  deleteConversation(conversationId) {
    return this.#json(conversationPath(conversationId), { method: "DELETE" });
  }

  /** `GET /api/chatbot/audit`: a page of the organization's audit trail, newest first (owners and admins). */
  audit({ limit, cursor, userId } = {}) {
    return this.#json(`/api/chatbot/audit${query({ limit, cursor, user_id: userId })}`);
  }
}

function conversationPath(conversationId) {
  return `/api/chatbot/conversations/${encodeURIComponent(conversationId)}`;
}

// "?a=1&b=x" of the parameters that have a value, or "".
function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function apiError(response, body) {
  const error = new ApiError(response.status, body);
  const retryAfter = Number(response.headers.get("retry-after"));
  if (Number.isFinite(retryAfter) && retryAfter > 0) error.retryAfter = retryAfter;
  return error;
}

const TIER_NAMES = {
  user: "your daily limit",
  organization: "your organization's daily limit",
  global: "the service's daily limit",
};

/**
 * When a limit resets, in the reader's local time: "at 01:00" today, "tomorrow at 01:00", or a date.
 * `resetsAt` is an ISO instant; `now` a Date.
 */
export function formatResetTime(resetsAt, { now = new Date(), locale, timeZone } = {}) {
  const when = new Date(resetsAt);
  if (Number.isNaN(when.getTime())) return null;
  const time = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit", timeZone }).format(when);
  const day = (d) => new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone }).format(d);
  if (day(when) === day(now)) return `at ${time}`;
  const tomorrow = new Date(now.getTime() + 86_400_000);
  if (day(when) === day(tomorrow)) return `tomorrow at ${time}`;
  const date = new Intl.DateTimeFormat(locale, { weekday: "short", month: "short", day: "numeric", timeZone }).format(when);
  return `on ${date} at ${time}`;
}

const STREAM_ERRORS = {
  limit_exceeded: { title: "Daily limit reached", message: "The reply stopped because a daily token limit was reached.", retryable: false },
  upstream_error: { title: "The assistant ran into a problem", message: "The AI service returned an error.", retryable: true },
  upstream_overloaded: { title: "The assistant is busy", message: "The AI service is overloaded right now. Try again in a moment.", retryable: true },
  timeout: { title: "The reply took too long", message: "The request hit its time limit before finishing.", retryable: true },
  internal_error: { title: "Something went wrong", message: "The assistant hit an unexpected error.", retryable: true },
};

/**
 * What to tell the user about a failure: `{kind, title, message, retryable}`. `failure` is an
 * ApiError, a StreamInterrupted, or a stream `error` event's data (`{code, message}`).
 */
export function describeFailure(failure, options = {}) {
  if (failure instanceof StreamInterrupted) {
    return { kind: "network", title: "Connection lost", message: "The connection dropped before the reply finished. What arrived is kept.", retryable: true };
  }
  if (failure instanceof ApiError) {
    const { status, code, body } = failure;
    if (status === 409 || code === "concurrent_request") {
      return { kind: "busy", title: "A reply is already running", message: "Another reply is still being written for you, perhaps in another tab. Wait for it to finish, then try again.", retryable: true };
    }
    if (status === 429 || code === "limit_exceeded") {
      const tier = TIER_NAMES[body.tier] ?? "a daily limit";
      const limit = Number.isFinite(body.limit) ? ` of ${new Intl.NumberFormat(options.locale).format(body.limit)} tokens` : "";
      const reset = body.resets_at ? formatResetTime(body.resets_at, options) : null;
      const tail = reset ? `It resets ${reset} (your time).` : "It resets at midnight UTC.";
      return { kind: "limit", title: "Daily limit reached", message: `You've reached ${tier}${limit}. ${tail}`, retryable: false };
    }
    if (status === 401 || code === "unauthorized") {
      return { kind: "auth", title: "Please sign in again", message: "Your session has expired or is not valid. Sign in again to keep chatting.", retryable: false };
    }
    if (status === 403 || code === "forbidden") {
      return { kind: "forbidden", title: "Not available for your role", message: "Your role in this organization does not include the assistant.", retryable: false };
    }
    if (code === "chatbot_disabled") {
      return { kind: "disabled", title: "The assistant is off", message: "The assistant is turned off for now.", retryable: false };
    }
    if (status === 503 || code === "unavailable") {
      return { kind: "unavailable", title: "Temporarily unavailable", message: "The assistant can't be reached right now. Try again in a moment.", retryable: true };
    }
    if (status === 413 || code === "payload_too_large") {
      return { kind: "invalid", title: "Message too long", message: "This message is too long to send. Shorten it and try again.", retryable: false };
    }
    if (code === "request_too_large") {
      const limit = typeof body?.limit === "number" ? ` of ${body.limit.toLocaleString("en-US")} tokens` : "";
      return { kind: "invalid", title: "Message too long", message: `This message is too long for the assistant's daily limit${limit}, even on its own. Shorten it or split it up.`, retryable: false };
    }
    if (status === 404) {
      return { kind: "gone", title: "Conversation not found", message: "This conversation was deleted, perhaps in another tab. Start a new chat to go on.", retryable: false };
    }
    if (status === 400) {
      return { kind: "invalid", title: "Message not accepted", message: failure.message, retryable: false };
    }
    return { kind: "server", title: "Something went wrong", message: `The server answered ${status}. Try again in a moment.`, retryable: true };
  }
  if (failure && typeof failure === "object" && typeof failure.code === "string") {
    const known = STREAM_ERRORS[failure.code] ?? STREAM_ERRORS.internal_error;
    return { kind: failure.code, ...known, message: failure.message || known.message };
  }
  return { kind: "unknown", title: "Something went wrong", message: String(failure?.message ?? failure), retryable: true };
}
