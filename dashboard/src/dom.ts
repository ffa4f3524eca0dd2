// Small DOM helpers shared by the pages.
import { ApiError } from "./api";

type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;
type Child = Node | string | number | null | undefined | false;
/** Children may nest in arrays (they are flattened). */
export type Children = Child | Children[];

function flat(children: Children[]): Child[] {
  return (children as unknown[]).flat(Infinity as 1) as Child[];
}

/** Creates an element: h("a", { href: "/x", "data-testid": "x" }, "text"). `on…` keys add listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Children[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of flat(children)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** An in-app link (the router handles the click). */
export function link(href: string, text: string, testid?: string): HTMLAnchorElement {
  return h("a", { href, "data-link": true, "data-testid": testid }, text);
}

export function table(headers: string[], rows: Children[][], testid?: string): HTMLElement {
  return h(
    "table",
    { "data-testid": testid },
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h(
      "tbody",
      {},
      rows.length
        ? rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))
        : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, "none")),
    ),
  );
}

/** The error box: the API's kind and message. */
export function errorBox(e: unknown, testid = "error"): HTMLElement {
  const kind = e instanceof ApiError ? e.kind : "Error";
  const msg = e instanceof Error ? e.message : String(e);
  return h("div", { class: "error", role: "alert", "data-testid": testid }, h("strong", {}, kind), ": ", msg);
}

export function loading(text = "Loading…"): HTMLElement {
  return h("div", { class: "loading", "aria-busy": "true" }, text);
}

/** Replaces the children of `el`. */
export function put(el: Element, ...children: Children[]): void {
  el.replaceChildren();
  for (const c of flat(children)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

/** Runs `load` and puts its result in `el`, a loading note meanwhile and the error box on failure. */
export async function section(el: Element, load: () => Promise<Children>, quiet = false): Promise<void> {
  if (!quiet) put(el, loading());
  try {
    put(el, await load());
  } catch (e) {
    put(el, errorBox(e));
  }
}

export function fmtTime(ms: number | null | undefined): string {
  if (!ms) return "—";
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtDuration(ms: number): string {
  if (ms < 0) ms = 0;
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (d) return `${d}d ${hh}h ${mm}m`;
  if (hh) return `${hh}h ${mm}m ${ss}s`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

export function fmtAgo(ms: number | null | undefined): string {
  if (!ms) return "—";
  return `${fmtDuration(Date.now() - ms)} ago`;
}

export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** A labelled form field. */
export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
}

/** Disables a form's button while `work` runs. */
export async function busy(button: HTMLButtonElement, work: () => Promise<void>): Promise<void> {
  const text = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = `${text}…`;
  try {
    await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = text;
  }
}

export function permText(perm: number): string {
  const r = perm & 4 ? "R" : "-";
  const w = perm & 2 ? "W" : "-";
  return `${perm} (${r}${w})`;
}
