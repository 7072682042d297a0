import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DEFAULT_SUGGESTIONS, normalizeSuggestions, visibleSuggestions } from "../src/suggestions.js";

const MEMBER = ["chatbot:use", "organization:read", "member:read"];
const ADMIN = [...MEMBER, "member:create", "member:update", "member:delete", "invitation:read", "invitation:create", "invitation:cancel", "organization:update", "audit:read", "usage:read"];

describe("suggestions", () => {
  it("offers a member only what their role can do: no invitations", () => {
    assert.deepEqual(visibleSuggestions(DEFAULT_SUGGESTIONS, MEMBER), ["Who are the admins here?"]);
  });

  it("offers an admin every default suggestion", () => {
    assert.deepEqual(visibleSuggestions(DEFAULT_SUGGESTIONS, ADMIN), ["Who are the admins here?", "Show pending invitations", "Invite gina@acme.test as a member"]);
  });

  it("shows suggestions that need no permission to anyone, and those that need one only once the permissions are known", () => {
    const list = normalizeSuggestions(["What can you do?", { text: "Invite gina@acme.test as a member", permission: "invitation:create" }]);
    assert.deepEqual(visibleSuggestions(list, null), ["What can you do?"]);
    assert.deepEqual(visibleSuggestions(list, ADMIN), ["What can you do?", "Invite gina@acme.test as a member"]);
  });

  it("takes strings or {text, permission} from the host, dropping blank ones and anything that is not a list", () => {
    assert.deepEqual(normalizeSuggestions([" Hi ", { text: "Invite", permission: "invitation:create" }, "", { text: "  " }, 42]), [
      { text: "Hi", permission: null },
      { text: "Invite", permission: "invitation:create" },
      { text: "42", permission: null },
    ]);
    assert.deepEqual(normalizeSuggestions("not a list"), []);
  });
});
