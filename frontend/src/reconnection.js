// Reconnection: getting back to a reply whose stream broke. The server keeps running a request whose
// client went away and keeps its events, so the sheet asks for them again from the last one it applied,
// a few times with growing pauses, before it says the connection is lost.
import { ApiError, StreamInterrupted } from "./api.js";

/** The pauses before each attempt to re-attach, in milliseconds. */
export const RECONNECT_DELAYS_MS = [250, 1000, 2000, 4000];

/** Whether a failed attempt is worth another: the network, or a server that is briefly unwell. */
export function isTransient(error) {
  if (error instanceof StreamInterrupted) return true;
  return error instanceof ApiError && (error.status >= 500 || error.status === 429) && error.code !== "chatbot_disabled";
}

/**
 * Runs `attach()` (open the stream again from where the reply is, resolve with its final event, or null
 * when the server has nothing more to send) after each pause of `delays` until one attempt ends well.
 * Resolves with what that attempt resolved with; throws the error of an attempt that is not worth
 * repeating, the last error once the attempts are spent, or nothing more once `signal` aborts (then it
 * resolves with undefined). `sleep(ms, signal)` waits, and returns early on abort.
 */
export async function reconnect({ attach, sleep, signal, delays = RECONNECT_DELAYS_MS, retryable = isTransient }) {
  let failure = null;
  for (const ms of delays) {
    if (ms > 0) await sleep(ms, signal);
    if (signal?.aborted) return undefined;
    try {
      return await attach();
    } catch (error) {
      if (signal?.aborted) return undefined;
      if (!retryable(error)) throw error;
      failure = error;
    }
  }
  throw failure ?? new StreamInterrupted(null);
}
