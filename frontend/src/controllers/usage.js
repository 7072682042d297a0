// UsageController: today's usage of the signed-in user, for the meter in the sheet's header, and what
// their role may do (the suggestions offered depend on it). A sheet out of the page asks for nothing, and
// a failure only leaves the meter empty.

export class UsageController {
  #connected = false;
  #store;
  #api;
  #signedIn;

  /** `api()` returns the current ChatApi; `signedIn()` says whether there is a user to ask about. */
  constructor({ store, api, signedIn }) {
    this.#store = store;
    this.#api = api;
    this.#signedIn = signedIn;
  }

  /** Fetches today's usage (the user tier) and the caller's role and permissions into the store. */
  async refresh() {
    if (!this.#connected || !this.#signedIn()) return;
    const user = this.#store.getState().userKey;
    try {
      const usage = await this.#api().usage();
      // An answer about the user signed in before a switch is not about this one.
      if (this.#store.getState().userKey !== user) return;
      const tier = usage?.tiers?.user;
      if (tier) this.#store.getState().setUsage({ used: tier.used, limit: tier.limit, resetsAt: usage.resets_at });
      if (Array.isArray(usage?.permissions)) this.#store.getState().setAccess({ role: usage.role, permissions: usage.permissions });
    } catch {
      // The header simply shows no usage; chatting is unaffected.
    }
  }

  hostConnected() {
    this.#connected = true;
  }

  hostDisconnected() {
    this.#connected = false;
  }
}
