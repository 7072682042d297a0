// UsageController: today's usage of the signed-in user, for the meter in the sheet's header. A sheet
// out of the page asks for nothing, and a failure only leaves the meter empty.

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

  /** Fetches today's usage into the store (the user tier). */
  async refresh() {
    if (!this.#connected || !this.#signedIn()) return;
    try {
      const usage = await this.#api().usage();
      const tier = usage?.tiers?.user;
      if (tier) this.#store.getState().setUsage({ used: tier.used, limit: tier.limit, resetsAt: usage.resets_at });
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
