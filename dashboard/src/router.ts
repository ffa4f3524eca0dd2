// History API router: each page has its own path; links with data-link navigate without a reload.

export type Cleanup = () => void;
export interface Ctx {
  params: Record<string, string>;
  query: URLSearchParams;
}
export type Page = (root: HTMLElement, ctx: Ctx) => Cleanup | void;

interface Route {
  pattern: RegExp;
  names: string[];
  page: Page;
  nav: string;
}

const routes: Route[] = [];

/** Adds a route: "/topics/:topic". `nav` is the menu entry to highlight. */
export function route(path: string, page: Page, nav: string): void {
  const names: string[] = [];
  const pattern = new RegExp(
    "^" +
      path.replace(/:([a-z]+)/g, (_, n: string) => {
        names.push(n);
        return "([^/]+)";
      }) +
      "/?$",
  );
  routes.push({ pattern, names, page, nav });
}

export function match(pathname: string): { page: Page; params: Record<string, string>; nav: string } | null {
  for (const r of routes) {
    const m = r.pattern.exec(pathname);
    if (!m) continue;
    const params: Record<string, string> = {};
    try {
      r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
    } catch {
      return null;
    }
    return { page: r.page, params, nav: r.nav };
  }
  return null;
}

let render: () => void = () => {};

export function startRouter(onRoute: () => void): void {
  render = onRoute;
  window.addEventListener("popstate", () => render());
  document.addEventListener("click", (e) => {
    const a = (e.target as Element | null)?.closest?.("a[data-link]") as HTMLAnchorElement | null;
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (a.origin !== location.origin) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  });
  render();
}

export function navigate(to: string, replace = false): void {
  if (replace) history.replaceState(null, "", to);
  else if (to !== location.pathname + location.search) history.pushState(null, "", to);
  render();
}
