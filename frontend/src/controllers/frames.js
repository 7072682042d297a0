// FrameScheduler: the element's animation frames, one per purpose (a render, moving focus), coalesced
// until they run. They are cancelled together when the sheet leaves the page: a detached sheet paints
// nothing, and a late callback would act on a sheet nobody sees.

export class FrameScheduler {
  #pending = new Map();
  #running = false;
  #request;
  #cancel;

  /** `request(callback)` and `cancel(id)` default to the window's animation frames (fakes in tests). */
  constructor({
    request = (callback) => globalThis.requestAnimationFrame(callback),
    cancel = (id) => globalThis.cancelAnimationFrame(id),
  } = {}) {
    this.#request = request;
    this.#cancel = cancel;
  }

  /** Runs `callback` on the next frame, unless one for `key` is already pending; nothing while stopped. */
  schedule(key, callback) {
    if (!this.#running || this.#pending.has(key)) return;
    const id = this.#request(() => {
      this.#pending.delete(key);
      callback();
    });
    this.#pending.set(key, id);
  }

  hostConnected() {
    this.#running = true;
  }

  hostDisconnected() {
    this.#running = false;
    for (const id of this.#pending.values()) this.#cancel(id);
    this.#pending.clear();
  }
}
