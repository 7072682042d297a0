// IdentityController: the host's token source, and whose conversation it means. The token is read
// unverified, only to key the stored conversation by user and organization; the server checks it on
// every request.

/** The JWT's payload (unverified: only to key the stored conversation by user), or null. */
export function tokenClaims(token) {
  try {
    const part = String(token).split(".")[1];
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "="));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export class IdentityController {
  #source = null;
  #claims = null;
  #store;
  #onSwitch;

  /** `store` is the chat store; `onSwitch()` hears that another user's conversation was loaded. */
  constructor({ store, onSwitch = () => {} }) {
    this.#store = store;
    this.#onSwitch = onSwitch;
  }

  /** The host's `async (options) => jwt`, or null when the host has not signed anyone in. */
  get source() {
    return this.#source;
  }
  set source(fn) {
    this.#source = typeof fn === "function" ? fn : null;
  }

  /** Whether the host gave a token source (without one, nothing that needs a user is asked for). */
  get signedIn() {
    return this.#source !== null;
  }

  /** What the last token read said about the user (`sub`, `org_id`, `name`, ...), or null. */
  get claims() {
    return this.#claims;
  }

  /** A token from the host's source (`options.forceRefresh` asks for a fresh one), or null. */
  async token(options) {
    return this.#source ? await this.#source(options) : null;
  }

  /** Reads the token and loads that user's conversation if it is not the one loaded. */
  async refresh() {
    let claims = null;
    try {
      claims = tokenClaims(await this.token());
    } catch {
      claims = null; // a failing token source counts as nobody signed in
    }
    this.#claims = claims;
    const key = claims?.sub ? `${claims.sub}@${claims.org_id ?? ""}` : "anonymous";
    if (this.#store.getState().userKey === key) return;
    this.#store.getState().loadUser(key);
    this.#onSwitch();
  }

  hostConnected() {
    if (this.signedIn) this.refresh();
  }
}
