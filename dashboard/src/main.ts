// The console's shell: the menu, the credentials form, the loopback notice and the router.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { api, ApiError, Info, loadCredentials, saveCredentials, setUnauthorizedHandler } from "./api";
import { busy, errorBox, field, h, link, loading, put } from "./dom";
import { Cleanup, match, route, startRouter } from "./router";
import { overviewPage } from "./pages/overview";
import { topicsPage, topicPage } from "./pages/topics";
import { groupsPage, groupPage } from "./pages/groups";
import { messagesPage } from "./pages/messages";
import { producePage } from "./pages/produce";

route("/", overviewPage, "/");
route("/topics", topicsPage, "/topics");
route("/topics/:topic", topicPage, "/topics");
route("/groups", groupsPage, "/groups");
route("/groups/:group", groupPage, "/groups");
route("/messages", messagesPage, "/messages");
route("/produce", producePage, "/produce");

const NAV: [string, string, string][] = [
  ["/", "Overview", "nav-overview"],
  ["/topics", "Topics", "nav-topics"],
  ["/groups", "Consumer groups", "nav-groups"],
  ["/messages", "Messages", "nav-messages"],
  ["/produce", "Produce", "nav-produce"],
];

const app = document.getElementById("app")!;
const nav = h("nav", {}, NAV.map(([href, text, id]) => link(href, text, id)));
const notice = h("div", { class: "notices" });
const main = h("main", {});
const who = h("span", { class: "who" });
app.append(h("header", {}, h("a", { href: "/", "data-link": true, class: "brand" }, "OrbitMQ"), nav, who), notice, main);

let info: Info | null = null;
let cleanup: Cleanup | void;
let needLogin = false;

function renderNotice(): void {
  put(notice);
  if (!info) return;
  if (!info.auth_required && info.loopback_only) {
    notice.append(
      h("div", { class: "notice", "data-testid": "notice-loopback" }, "No credentials: listening on 127.0.0.1 only."),
    );
  } else if (!info.auth_required) {
    notice.append(
      h("div", { class: "notice warn", "data-testid": "notice-open" }, `No credentials, and listening on ${info.listen}: anyone who reaches it can use this console.`),
    );
  }
  const creds = loadCredentials();
  put(
    who,
    info.auth_required && creds
      ? [
          `access key ${creds.accessKey} `,
          h("button", { type: "button", class: "link", "data-testid": "logout", onclick: () => { saveCredentials(null); needLogin = true; show(); } }, "sign out"),
        ]
      : null,
  );
}

function loginForm(reason?: ApiError): HTMLElement {
  const ak = h("input", { name: "access_key", required: true, autocomplete: "username", "data-testid": "login-access-key" });
  const sk = h("input", { name: "secret_key", type: "password", required: true, autocomplete: "current-password", "data-testid": "login-secret-key" });
  const submit = h("button", { type: "submit", "data-testid": "login-submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card login", "data-testid": "login-form" },
    h("h2", {}, "Credentials"),
    h("p", {}, "This server needs an access key and its secret. They stay in this tab (sessionStorage) and sign each request; the secret is never sent."),
    reason ? errorBox(reason) : null,
    field("Access key", ak),
    field("Secret key", sk),
    submit,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(submit, async () => {
      saveCredentials({ accessKey: ak.value.trim(), secretKey: sk.value });
      try {
        await api.cluster(); // a signed call: checks the keys
        needLogin = false;
        show();
      } catch (err) {
        put(main, loginForm(err instanceof ApiError ? err : undefined));
      }
    });
  });
  return form;
}

/** Renders the page of the current path (or the credentials form). */
function show(reason?: ApiError): void {
  if (cleanup) cleanup();
  cleanup = undefined;
  renderNotice();
  const m = match(location.pathname);
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", !!m && a.getAttribute("href") === m.nav);
  if (info?.auth_required && (needLogin || !loadCredentials())) {
    put(main, loginForm(reason));
    return;
  }
  const root = h("div", { class: "page" });
  put(main, root);
  if (!m) {
    document.title = "Not found · OrbitMQ";
    put(root, h("h1", {}, "Not found"), h("p", { "data-testid": "not-found" }, `No page at ${location.pathname}. `, link("/", "Overview")));
    return;
  }
  cleanup = m.page(root, { params: m.params, query: new URLSearchParams(location.search) });
}

setUnauthorizedHandler((e) => {
  saveCredentials(null);
  needLogin = true;
  show(e);
});

async function boot(): Promise<void> {
  put(main, loading("Connecting…"));
  try {
    info = await api.info();
  } catch (e) {
    put(main, errorBox(e), h("button", { type: "button", "data-testid": "retry", onclick: () => void boot() }, "Retry"));
    return;
  }
  if (!started) startRouter(() => show());
  started = true;
}
let started = false;

void boot();
