// A tiny DOM builder and an in-place patcher, so live numbers refresh without
// destroying the element under the operator's focus or pointer.

/** h("button", {class: "x", onclick: f}, "text", child…) → Element. */
export function h(tag, attributes, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value == null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A value that changes every refresh: the patcher copies its text instead of re-rendering. */
export function live(key, text, attributes = {}) {
  return h("span", { ...attributes, "data-live": key }, text);
}

function skeleton(node) {
  const copy = node.cloneNode(true);
  for (const element of copy.querySelectorAll("[data-live]")) element.textContent = "";
  if (copy.dataset && copy.dataset.live !== undefined) copy.textContent = "";
  return copy.outerHTML;
}

/**
 * Puts `next` into `container` in place of its current content. When only `live` values
 * differ, copies their text into the existing nodes (focus and event handlers survive);
 * otherwise replaces the content and puts focus back on the element with the same
 * `data-focus` key.
 */
export function patch(container, next) {
  const current = container.firstElementChild;
  if (current && container.childElementCount === 1 && skeleton(current) === skeleton(next)) {
    const fresh = new Map([...next.querySelectorAll("[data-live]")].map((e) => [e.dataset.live, e.textContent]));
    for (const element of current.querySelectorAll("[data-live]")) {
      const text = fresh.get(element.dataset.live);
      if (text !== undefined && element.textContent !== text) element.textContent = text;
    }
    return;
  }
  const focused = document.activeElement && container.contains(document.activeElement)
    ? document.activeElement.dataset.focus : undefined;
  container.replaceChildren(next);
  if (focused) {
    const again = container.querySelector(`[data-focus="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
}
