// What both custom elements need from the page that hosts them.

/**
 * A property set on the element before its class was defined shadows the class's accessor: moves it
 * onto the accessor (call from connectedCallback).
 */
export function upgradeProperty(element, name) {
  if (!Object.hasOwn(element, name)) return;
  const value = element[name];
  delete element[name];
  element[name] = value;
}

/** The page's sessionStorage, or null where storage is blocked. */
export function safeSessionStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // storage blocked (sandboxed iframe, strict privacy settings)
  }
}
