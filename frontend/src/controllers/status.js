// StatusController: whether the assistant is switched on at the server, asked whenever the sheet joins
// the page or its API changes.

export class StatusController {
  #store;
  #api;

  /** `api()` returns the current ChatApi. */
  constructor({ store, api }) {
    this.#store = store;
    this.#api = api;
  }

  /** Asks the server and records the answer in the store (`enabled`). */
  async check() {
    try {
      const status = await this.#api().status();
      this.#store.getState().setEnabled(Boolean(status?.enabled));
    } catch {
      // Unknown: leave the panel usable; a send will say precisely what is wrong.
    }
  }

  hostConnected() {
    this.check();
  }
}
