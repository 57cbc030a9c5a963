import { describe, expect, it } from "vitest";
import { h, morph } from "./dom";

describe("h and morph", () => {
  it("builds elements with attributes, properties, handlers and nested children", () => {
    let clicked = 0;
    const el = h("div", { class: "a", hidden: false }, "x", [h("b", null, 1), null, false], h("button", { disabled: false, onclick: () => clicked++ }, "go"), h("input", { disabled: true }));
    expect(el.outerHTML).toBe('<div class="a">x<b>1</b><button>go</button><input disabled=""></div>');
    (el.querySelector("button") as HTMLButtonElement).click();
    expect(clicked).toBe(1);
  });

  it("patches in place, keeping nodes that did not change", () => {
    const live = h("ul", null, h("li", { "data-key": "a" }, "A"), h("li", { "data-key": "b" }, "B"));
    document.body.replaceChildren(live);
    const b = live.children[1];
    morph(live, h("ul", null, h("li", { "data-key": "b", class: "x" }, "B!"), h("li", { "data-key": "a" }, "A")));
    expect(live.outerHTML).toBe('<ul><li data-key="b" class="x">B!</li><li data-key="a">A</li></ul>');
    expect(live.children[0]).toBe(b);
    morph(live, h("ul", null, h("li", { "data-key": "b" }, "B")));
    expect(live.outerHTML).toBe('<ul><li data-key="b">B</li></ul>');
  });

  it("replaces a node whose tag changed", () => {
    const live = h("div", null, h("span", null, "a"));
    morph(live, h("div", null, h("p", null, "b")));
    expect(live.innerHTML).toBe("<p>b</p>");
  });

  it("never overwrites what the user is typing", () => {
    const live = h("div", null, h("textarea", { value: "old" }));
    document.body.replaceChildren(live);
    const area = live.querySelector("textarea")!;
    area.focus();
    area.value = "typing";
    morph(live, h("div", null, h("textarea", { value: "old", class: "x" })));
    expect(area.value).toBe("typing");
    expect(area.className).toBe("x");
    area.blur();
    morph(live, h("div", null, h("textarea", { value: "new" })));
    expect(area.value).toBe("new");
  });

  it("updates checkbox state and handlers", () => {
    const live = h("input", { type: "checkbox", checked: false });
    const handler = () => undefined;
    morph(live, h("input", { type: "checkbox", checked: true, onchange: handler }));
    expect((live as HTMLInputElement).checked).toBe(true);
    expect((live as HTMLInputElement).onchange).toBe(handler);
  });
});
