import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PagedList } from "../src/paging.js";

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

// A server whose pages are answered when the test says so: `asked` holds each cursor and its answer.
function fakeServer() {
  const asked = [];
  return {
    asked,
    fetchPage: (cursor) => {
      const answer = deferred();
      asked.push({ cursor, answer });
      return answer.promise;
    },
  };
}

describe("paged list", () => {
  it("loads the first page, then the next with its cursor, and stops when there is none", async () => {
    const server = fakeServer();
    const list = new PagedList({ fetchPage: server.fetchPage, key: (item) => item.id });
    const first = list.reload();
    assert.equal(list.state.loading, true);
    server.asked[0].answer.resolve({ items: [{ id: "a" }, { id: "b" }], nextCursor: "p2" });
    await first;
    const more = list.loadMore();
    assert.equal(server.asked[1].cursor, "p2");
    server.asked[1].answer.resolve({ items: [{ id: "c" }], nextCursor: null });
    await more;
    assert.deepEqual(list.state.items.map((i) => i.id), ["a", "b", "c"]);
    assert.equal(list.state.loading, false);
    await list.loadMore();
    assert.equal(server.asked.length, 2, "no page after the last");
  });

  it("asks for one page at a time, however often more is asked for", async () => {
    const server = fakeServer();
    const list = new PagedList({ fetchPage: server.fetchPage });
    const first = list.reload();
    server.asked[0].answer.resolve({ items: [1], nextCursor: "p2" });
    await first;
    list.loadMore();
    list.loadMore();
    assert.equal(server.asked.length, 2);
  });

  it("does not list twice an item that moved between two pages", async () => {
    const server = fakeServer();
    const list = new PagedList({ fetchPage: server.fetchPage, key: (item) => item.id });
    const first = list.reload();
    server.asked[0].answer.resolve({ items: [{ id: "a" }, { id: "b" }], nextCursor: "p2" });
    await first;
    const more = list.loadMore();
    server.asked[1].answer.resolve({ items: [{ id: "b" }, { id: "c" }], nextCursor: null });
    await more;
    assert.deepEqual(list.state.items.map((i) => i.id), ["a", "b", "c"]);
  });

  it("drops a page that arrives after the list was reloaded", async () => {
    const server = fakeServer();
    const list = new PagedList({ fetchPage: server.fetchPage });
    const first = list.reload();
    server.asked[0].answer.resolve({ items: ["old"], nextCursor: "p2" });
    await first;
    const stale = list.loadMore();
    const fresh = list.reload();
    server.asked[2].answer.resolve({ items: ["new"], nextCursor: null });
    await fresh;
    server.asked[1].answer.resolve({ items: ["stale"], nextCursor: "p3" });
    await stale;
    assert.deepEqual(list.state.items, ["new"]);
    assert.equal(list.state.nextCursor, null);
  });

  it("keeps what it had when a page fails, says so, and loads it again when asked", async () => {
    const server = fakeServer();
    const changes = [];
    const list = new PagedList({ fetchPage: server.fetchPage, onChange: (state) => changes.push(state) });
    const first = list.reload();
    server.asked[0].answer.resolve({ items: ["a"], nextCursor: "p2" });
    await first;
    const more = list.loadMore();
    server.asked[1].answer.reject(new Error("offline"));
    await more;
    assert.deepEqual(list.state.items, ["a"]);
    assert.equal(list.state.error.message, "offline");
    assert.equal(list.state.nextCursor, "p2");
    const again = list.loadMore();
    assert.equal(list.state.error, null);
    server.asked[2].answer.resolve({ items: ["b"], nextCursor: null });
    await again;
    assert.deepEqual(list.state.items, ["a", "b"]);
    assert.ok(changes.length >= 6, "every change is heard");
  });
});
