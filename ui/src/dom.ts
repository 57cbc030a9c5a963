// dom.ts — the whole "framework": `h()` builds DOM nodes, `morph()` patches a live tree to look
// like a freshly built one. Views are plain functions from state to nodes; after every change
// the app builds the view again and morphs it onto the page, so the UI code reads like a full
// re-render while focus, caret position and half-typed input survive.
//
// Rules morph follows: same tag → patch attributes, properties and children (by position, or by
// `data-key` when both sides have one); different tag → replace. A focused <input>/<textarea>'s
// value is never overwritten (the user is typing in it). Event handlers are properties
// (`onclick`), so patching them is an assignment.

export type Child = Node | string | number | null | undefined | false | Child[];

type Props = Record<string, unknown>;

/** Properties set as DOM properties rather than attributes. */
const PROPERTIES = new Set(["value", "checked", "disabled", "selected", "indeterminate"]);

/** Builds an element: `h("button", { class: "primary", onclick: go }, "Connect")`. */
export function h(tag: string, props: Props | null = null, ...children: Child[]): HTMLElement {
  const isSvg = tag === "svg" || SVG_TAGS.has(tag);
  const el = isSvg
    ? (document.createElementNS("http://www.w3.org/2000/svg", tag) as unknown as HTMLElement)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    setProp(el, key, value);
  }
  appendChildren(el, children);
  return el;
}

const SVG_TAGS = new Set(["path", "g", "line", "text", "rect", "polyline", "title"]);

function appendChildren(el: Node, children: Child[]): void {
  for (const child of children) {
    if (Array.isArray(child)) {
      appendChildren(el, child);
    } else if (child === null || child === undefined || child === false) {
      continue;
    } else if (child instanceof Node) {
      el.appendChild(child);
    } else {
      el.appendChild(document.createTextNode(String(child)));
    }
  }
}

function setProp(el: HTMLElement, key: string, value: unknown): void {
  if (key.startsWith("on")) {
    (el as unknown as Record<string, unknown>)[key] = value ?? null;
  } else if (PROPERTIES.has(key)) {
    (el as unknown as Record<string, unknown>)[key] = value;
    // Keep an attribute mirror so morph can compare and tests can query.
    if (value === false || value === null || value === undefined) el.removeAttribute(key);
    else el.setAttribute(key, value === true ? "" : String(value));
  } else if (value === false || value === null || value === undefined) {
    el.removeAttribute(key);
  } else {
    el.setAttribute(key, value === true ? "" : String(value));
  }
}

/** Patches `live` (in the page) to match `fresh` (just built); returns the node now in place. */
export function morph(live: Node, fresh: Node): Node {
  if (
    live.nodeType !== fresh.nodeType ||
    live.nodeName !== fresh.nodeName ||
    keyOf(live) !== keyOf(fresh)
  ) {
    live.parentNode?.replaceChild(fresh, live);
    return fresh;
  }
  if (live.nodeType === Node.TEXT_NODE) {
    if (live.nodeValue !== fresh.nodeValue) live.nodeValue = fresh.nodeValue;
    return live;
  }
  if (!(live instanceof Element) || !(fresh instanceof Element)) return live;
  morphAttributes(live, fresh);
  morphChildren(live, fresh);
  return live;
}

function keyOf(node: Node): string | null {
  return node instanceof Element ? node.getAttribute("data-key") : null;
}

function morphAttributes(live: Element, fresh: Element): void {
  for (const attr of Array.from(live.attributes)) {
    if (!fresh.hasAttribute(attr.name)) live.removeAttribute(attr.name);
  }
  for (const attr of Array.from(fresh.attributes)) {
    if (live.getAttribute(attr.name) !== attr.value) live.setAttribute(attr.name, attr.value);
  }
  const l = live as unknown as Record<string, unknown>;
  const f = fresh as unknown as Record<string, unknown>;
  for (const key of ["onclick", "oninput", "onchange", "onkeydown", "onsubmit", "onscroll"]) {
    if (l[key] !== f[key]) l[key] = f[key];
  }
  const typing =
    (live instanceof HTMLInputElement || live instanceof HTMLTextAreaElement) &&
    live.ownerDocument.activeElement === live;
  for (const key of PROPERTIES) {
    if (key === "value" && typing) continue;
    if (key in f && l[key] !== f[key]) l[key] = f[key];
  }
}

function morphChildren(live: Element, fresh: Element): void {
  const freshChildren = Array.from(fresh.childNodes);
  const keyed = new Map<string, Node>();
  for (const child of Array.from(live.childNodes)) {
    const key = keyOf(child);
    if (key !== null) keyed.set(key, child);
  }
  freshChildren.forEach((freshChild, index) => {
    const key = keyOf(freshChild);
    let current: Node | undefined = live.childNodes[index];
    if (key !== null && keyed.has(key) && keyed.get(key) !== current) {
      const moved = keyed.get(key)!;
      live.insertBefore(moved, current ?? null);
      current = moved;
    }
    if (current === undefined) {
      live.appendChild(freshChild);
    } else {
      morph(current, freshChild);
    }
  });
  while (live.childNodes.length > freshChildren.length) {
    live.removeChild(live.lastChild!);
  }
}
