#!/usr/bin/env node
// tests/gui/e2e/wd.mjs — a tiny, dependency-free W3C WebDriver client for tests/gui/e2e.sh.
//
// One command per invocation, so the test narrative stays in the shell script next to its
// network-namespace checks; the session id lives in a state file between invocations.
// Every wait is bounded (--timeout SECS, default 20) and polls every 200 ms; every HTTP request
// is bounded too. Uses only Node's built-in fetch (Node >= 18).
//
// Environment: WD_URL (the tauri-driver, e.g. http://127.0.0.1:4444), WD_STATE (state file).
//
// Commands (selectors are CSS):
//   start APP [ARG...]            new session launching APP (tauri:options.application); prints id
//   stop                          delete the session (closes the app)
//   wait SEL [--text RE] [--gone] wait until SEL exists (and its text matches RE), or is gone;
//                                 prints the element's text
//   click SEL [--text RE]         wait as above, then click it (retried while the page re-renders)
//   text SEL                      the element's text (must exist now)
//   attr SEL NAME                 an attribute of the element (must exist now)
//   count SEL                     how many elements match (0 is fine)
//   shot FILE                     save a screenshot of the window (PNG)
//   status                        exit 0 if the driver answers /status
// Exit status: 0 on success; 1 on failure or timeout, with the reason and the page's visible text
// on stderr.

import { readFileSync, writeFileSync } from "node:fs";

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";
const POLL_MS = 200;
const REQUEST_MS = 30_000;
const base = process.env.WD_URL ?? "http://127.0.0.1:4444";
const stateFile = process.env.WD_STATE;

class WdError extends Error {
  constructor(status, error, message) {
    super(`${error}: ${message} (HTTP ${status})`);
    this.error = error;
  }
}

async function call(method, path, body, timeoutMs = REQUEST_MS) {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new WdError(res.status, "bad response", text.slice(0, 300));
  }
  if (!res.ok || (json.value && json.value.error)) {
    throw new WdError(res.status, json.value?.error ?? "error", json.value?.message ?? text.slice(0, 300));
  }
  return json.value;
}

function session() {
  if (!stateFile) throw new Error("WD_STATE is not set");
  const id = readFileSync(stateFile, "utf8").trim();
  if (!id) throw new Error(`no session in ${stateFile}: run 'start' first`);
  return `/session/${id}`;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The first element matching `sel` (and `re`, if given), or null. */
async function find(sel, re) {
  const found = await call("POST", `${session()}/elements`, { using: "css selector", value: sel });
  for (const el of found) {
    const id = el[ELEMENT];
    if (!re) return { id, text: null };
    try {
      const text = await call("GET", `${session()}/element/${id}/text`);
      if (re.test(text)) return { id, text };
    } catch (e) {
      // Re-rendered between finding and reading it: look again on the next poll.
      if (e.error !== "stale element reference") throw e;
    }
  }
  return null;
}

/** The visible text of the page, for failure messages. */
async function pageText() {
  try {
    const text = await call("POST", `${session()}/execute/sync`, {
      script: "return document.body ? document.body.innerText : ''",
      args: [],
    }, 5000);
    return String(text).slice(0, 2000);
  } catch (e) {
    return `(could not read the page: ${e.message})`;
  }
}

/** Polls `probe` until it returns a value other than undefined, or fails after `secs`. */
async function until(secs, what, probe) {
  const deadline = Date.now() + secs * 1000;
  let last = null;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${secs}s waiting for ${what}${last ? ` (last error: ${last.message})` : ""}\n--- page text ---\n${await pageText()}`);
    }
    await sleep(POLL_MS);
  }
}

function options(args) {
  const out = { timeout: 20, text: null, gone: false, rest: [] };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--timeout") out.timeout = Number(args[++i]);
    else if (args[i] === "--text") out.text = new RegExp(args[++i]);
    else if (args[i] === "--gone") out.gone = true;
    else out.rest.push(args[i]);
  }
  return out;
}

async function main(argv) {
  const [cmd, ...args] = argv;
  const o = options(args);
  switch (cmd) {
    case "status":
      await call("GET", "/status", undefined, 2000);
      return;
    case "start": {
      const [application, ...appArgs] = o.rest;
      const caps = { capabilities: { alwaysMatch: { "tauri:options": { application, args: appArgs } } } };
      const value = await call("POST", "/session", caps, o.timeout * 1000);
      writeFileSync(stateFile, value.sessionId);
      console.log(value.sessionId);
      return;
    }
    case "stop":
      await call("DELETE", session(), undefined, o.timeout * 1000);
      writeFileSync(stateFile, "");
      return;
    case "wait": {
      const [sel] = o.rest;
      const what = `${o.gone ? "no " : ""}${sel}${o.text ? ` with text ${o.text}` : ""}`;
      const hit = await until(o.timeout, what, async () => {
        const el = await find(sel, o.text);
        if (o.gone) return el ? undefined : null;
        return el ?? undefined;
      });
      if (hit && !o.gone) {
        console.log(hit.text ?? (await call("GET", `${session()}/element/${hit.id}/text`)));
      }
      return;
    }
    case "click": {
      const [sel] = o.rest;
      await until(o.timeout, `a clickable ${sel}${o.text ? ` with text ${o.text}` : ""}`, async () => {
        const el = await find(sel, o.text);
        if (!el) return undefined;
        await call("POST", `${session()}/element/${el.id}/click`, {});
        return null;
      });
      return;
    }
    case "text":
    case "attr":
    case "count": {
      const [sel, name] = o.rest;
      const found = await call("POST", `${session()}/elements`, { using: "css selector", value: sel });
      if (cmd === "count") {
        console.log(found.length);
        return;
      }
      if (found.length === 0) throw new Error(`no element matches ${sel}\n--- page text ---\n${await pageText()}`);
      const id = found[0][ELEMENT];
      const v = cmd === "text"
        ? await call("GET", `${session()}/element/${id}/text`)
        : await call("GET", `${session()}/element/${id}/attribute/${encodeURIComponent(name)}`);
      console.log(v ?? "");
      return;
    }
    case "shot": {
      const [file] = o.rest;
      const png = await call("GET", `${session()}/screenshot`);
      writeFileSync(file, Buffer.from(png, "base64"));
      console.log(file);
      return;
    }
    default:
      throw new Error(`unknown command '${cmd}' (see the top of ${process.argv[1]})`);
  }
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`wd ${process.argv.slice(2).join(" ")}: ${e.message}`);
  process.exit(1);
});
