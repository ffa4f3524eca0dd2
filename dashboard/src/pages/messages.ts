// Messages: look up by key (topic + key), by message id, or by (topic, queue, offset); each
// result shows its properties and body, and can be resent to one consumer group.
import { api, Group, Message } from "../api";
import { busy, errorBox, field, fmtBytes, fmtTime, h, link, put, section } from "../dom";
import { navigate, type Page } from "../router";

function downloadLink(m: Message): HTMLElement {
  const url = api.bodyUrl(m);
  const a = h("a", { href: url, download: `${m.message_id}.bin`, "data-testid": "message-body-download" }, `download all ${fmtBytes(m.body.size)}`);
  // Fetched with the signed client (a plain link would carry no credentials).
  a.addEventListener("click", (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const blob = await api.bodyBlob(m);
        const u = URL.createObjectURL(blob);
        const tmp = h("a", { href: u, download: `${m.message_id}.bin` });
        document.body.append(tmp);
        tmp.click();
        tmp.remove();
        setTimeout(() => URL.revokeObjectURL(u), 10_000);
      } catch (err) {
        a.after(errorBox(err));
      }
    })();
  });
  return a;
}

function bodyView(m: Message): HTMLElement {
  const b = m.body;
  const isText = b.text !== null;
  const content = isText ? b.text! : (b.hex ?? "").replace(/(.{2})/g, "$1 ").replace(/((?:.. ){16})/g, "$1\n");
  return h(
    "div",
    { class: "body" },
    h("p", { class: "muted" }, `Body: ${fmtBytes(b.size)}, ${isText ? "UTF-8 text" : "binary (hex)"}`, b.truncated ? [", first 4 KiB shown: ", downloadLink(m)] : null),
    h("pre", { "data-testid": "message-body", "data-encoding": isText ? "text" : "hex" }, content),
  );
}

function messageCard(m: Message, groups: () => Promise<Group[]>): HTMLElement {
  const kv: [string, string | Node][] = [
    ["Message id", m.message_id],
    ["Offset message id", m.offset_msg_id],
    ["Topic", link(`/topics/${encodeURIComponent(m.topic)}`, m.topic)],
    ["Broker", m.broker_name],
    ["Queue / offset", `${m.queue_id} / ${m.queue_offset}`],
    ["CommitLog offset", String(m.commitlog_offset)],
    ["Tag", m.tag ?? "—"],
    ["Keys", m.keys.length ? m.keys.join(", ") : "—"],
    ["Born", `${fmtTime(m.born_timestamp)} at ${m.born_host}`],
    ["Stored", `${fmtTime(m.store_timestamp)} at ${m.store_host}`],
    ["Reconsume times", String(m.reconsume_times)],
    ["Size", fmtBytes(m.size)],
  ];
  const props = Object.entries(m.properties ?? {}).sort(([a], [b]) => a.localeCompare(b));

  const picker = h("select", { "data-testid": "resend-group" }, h("option", { value: "" }, "Loading groups…"));
  const send = h("button", { type: "button", "data-testid": "resend-submit" }, "Resend to group");
  const result = h("span", { "data-testid": "resend-result" });
  void groups().then(
    (gs) => put(picker, h("option", { value: "" }, gs.length ? "choose a group" : "no groups"), gs.map((g) => h("option", { value: g.name }, g.name))),
    (err) => put(result, errorBox(err)),
  );
  send.addEventListener("click", () => {
    if (!picker.value) {
      put(result, errorBox(new Error("choose a group")));
      return;
    }
    void busy(send, async () => {
      try {
        await api.resend(picker.value, m.topic, m.message_id);
        put(result, h("span", { class: "ok" }, `Resent to ${picker.value}.`));
      } catch (err) {
        put(result, errorBox(err));
      }
    });
  });

  return h(
    "article",
    { class: "card message", "data-testid": "message-result", "data-message-id": m.message_id },
    h("h3", {}, m.message_id),
    h("dl", { class: "kv" }, kv.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h4", {}, "Properties"),
    props.length
      ? h("dl", { class: "kv props", "data-testid": "message-properties" }, props.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))
      : h("p", { class: "muted" }, "none"),
    bodyView(m),
    h("div", { class: "row resend" }, picker, send, result),
  );
}

export const messagesPage: Page = (root, { query }) => {
  document.title = "Messages · OrbitMQ";
  const resultsEl = h("div", { "data-testid": "message-results" });
  let groupsPromise: Promise<Group[]> | null = null;
  const groups = () => (groupsPromise ??= api.groups());

  const go = (q: Record<string, string>) => navigate(`/messages?${new URLSearchParams(q).toString()}`);

  // By key
  const kTopic = h("input", { name: "topic", required: true, value: query.get("key") !== null ? query.get("topic") ?? "" : "", "data-testid": "lookup-key-topic" });
  const kKey = h("input", { name: "key", required: true, value: query.get("key") ?? "", "data-testid": "lookup-key-key" });
  const kForm = h("form", { class: "form", "data-testid": "lookup-key-form" }, h("h3", {}, "By key"), field("Topic", kTopic), field("Key", kKey), h("button", { type: "submit", "data-testid": "lookup-key-submit" }, "Find"));
  kForm.addEventListener("submit", (e) => {
    e.preventDefault();
    go({ topic: kTopic.value.trim(), key: kKey.value.trim() });
  });

  // By id
  const iId = h("input", { name: "id", required: true, value: query.get("id") ?? "", "data-testid": "lookup-id-id" });
  const iForm = h("form", { class: "form", "data-testid": "lookup-id-form" }, h("h3", {}, "By message id"), field("Message id", iId), h("button", { type: "submit", "data-testid": "lookup-id-submit" }, "Find"));
  iForm.addEventListener("submit", (e) => {
    e.preventDefault();
    go({ id: iId.value.trim() });
  });

  // By offset
  const oTopic = h("input", { name: "topic", required: true, value: query.get("offset") !== null ? query.get("topic") ?? "" : "", "data-testid": "lookup-offset-topic" });
  const oQueue = h("input", { name: "queue", type: "number", min: 0, required: true, value: query.get("queue") ?? "0", "data-testid": "lookup-offset-queue" });
  const oOffset = h("input", { name: "offset", type: "number", min: 0, required: true, value: query.get("offset") ?? "0", "data-testid": "lookup-offset-offset" });
  // Each broker of a topic has its own queues: through a name server, name the one meant.
  const oBroker = h("input", { name: "broker", placeholder: "any (one broker)", value: query.get("broker") ?? "", "data-testid": "lookup-offset-broker" });
  const oForm = h(
    "form",
    { class: "form", "data-testid": "lookup-offset-form" },
    h("h3", {}, "By queue offset"),
    field("Topic", oTopic),
    h("div", { class: "row" }, field("Queue", oQueue), field("Offset", oOffset)),
    field("Broker", oBroker),
    h("button", { type: "submit", "data-testid": "lookup-offset-submit" }, "Find"),
  );
  oForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const q: Record<string, string> = { topic: oTopic.value.trim(), queue: oQueue.value, offset: oOffset.value };
    if (oBroker.value.trim()) q.broker = oBroker.value.trim();
    go(q);
  });

  put(root, h("h1", {}, "Messages"), h("div", { class: "card lookups" }, kForm, iForm, oForm), resultsEl);

  const show = (ms: Message[]) =>
    ms.length
      ? [h("p", { class: "muted", "data-testid": "message-count" }, `${ms.length} message(s)`), ms.map((m) => messageCard(m, groups))]
      : h("p", { class: "empty", "data-testid": "message-none" }, "No message found.");

  const topic = query.get("topic") ?? "";
  if (query.get("id")) {
    void section(resultsEl, async () => show(await api.messageById(query.get("id")!)));
  } else if (query.get("key") !== null && topic) {
    void section(resultsEl, async () => show(await api.messagesByKey(topic, query.get("key")!)));
  } else if (query.get("offset") !== null && topic) {
    const broker = query.get("broker") || undefined;
    void section(resultsEl, async () => show([await api.messageByOffset(topic, Number(query.get("queue") ?? 0), Number(query.get("offset")), broker)]));
  }
};
