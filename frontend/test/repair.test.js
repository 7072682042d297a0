import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { openFence, repairMarkdown, tableCells } from "../src/repair.js";

describe("streaming Markdown repair", () => {
  it("leaves complete Markdown unchanged", () => {
    const complete = "# Title\n\nSome **bold** and `code`.\n\n```js\nlet a = 1;\n```\n\n| a | b |\n| --- | --- |\n| 1 | 2 |";
    assert.equal(repairMarkdown(complete), complete);
    assert.equal(repairMarkdown(""), "");
  });

  it("closes an unclosed code fence with the same marker", () => {
    assert.equal(repairMarkdown("Here:\n\n```python\nprint('hi')"), "Here:\n\n```python\nprint('hi')\n```");
    assert.equal(repairMarkdown("~~~~\ncode\n"), "~~~~\ncode\n~~~~");
    assert.equal(repairMarkdown("````\n```\ninner"), "````\n```\ninner\n````");
  });

  it("does not touch Markdown-looking text inside an open code block", () => {
    const text = "```\n| not | a table |\n**not bold";
    assert.equal(repairMarkdown(text), `${text}\n\`\`\``);
  });

  it("knows which fence is open", () => {
    assert.equal(openFence(["```js", "x", "```"]), null);
    assert.equal(openFence(["```js", "x"]), "```");
    assert.equal(openFence(["~~~", "```", "still code"]), "~~~");
    assert.equal(openFence(["``` not`a fence"]), null);
  });

  it("adds the delimiter row under a table header that has just arrived", () => {
    assert.equal(repairMarkdown("Members:\n\n| Name | Role |"), "Members:\n\n| Name | Role |\n| --- | --- |");
    // A header still being typed keeps its partial cell.
    assert.equal(repairMarkdown("| Name | Ro"), "| Name | Ro\n| --- | --- |");
  });

  it("completes a half-written delimiter row from the header's cell count", () => {
    assert.equal(repairMarkdown("| Name | Role | Joined |\n|---|:-"), "| Name | Role | Joined |\n| --- | --- | --- |");
    assert.equal(repairMarkdown("| Name | Role |\n|"), "| Name | Role |\n| --- | --- |");
    assert.equal(repairMarkdown("| Name | Role |\n"), "| Name | Role |\n| --- | --- |");
  });

  it("leaves a table whose body is streaming alone", () => {
    const text = "| Name | Role |\n| --- | --- |\n| Alice | adm";
    assert.equal(repairMarkdown(text), text);
  });

  it("waits for a table row's first cell before treating it as a table", () => {
    assert.equal(repairMarkdown("Text\n\n|"), "Text\n\n|");
  });

  it("closes an open code span and open strong emphasis in the last paragraph", () => {
    assert.equal(repairMarkdown("Run `npm te"), "Run `npm te`");
    assert.equal(repairMarkdown("This is **very imp"), "This is **very imp**");
    assert.equal(repairMarkdown("Done **one** and **two"), "Done **one** and **two**");
  });

  it("drops a dangling ** that has no text after it yet", () => {
    assert.equal(repairMarkdown("Hello **"), "Hello ");
  });

  it("ignores ** inside code spans when counting", () => {
    assert.equal(repairMarkdown("Use `a ** b` here"), "Use `a ** b` here");
  });

  it("only repairs the last paragraph", () => {
    assert.equal(repairMarkdown("Odd ` tick earlier\n\nLater **bold"), "Odd ` tick earlier\n\nLater **bold**");
  });

  it("splits table cells on unescaped pipes only", () => {
    assert.deepEqual(tableCells("| a | b \\| c | d |"), [" a ", " b \\| c ", " d "]);
    assert.deepEqual(tableCells("a | b"), ["a ", " b"]);
  });
});
