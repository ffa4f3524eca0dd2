// Produce: send one message (topic, tag, keys, properties, body) and show its receipt.
import { api } from "../api";
import { busy, errorBox, field, h, link, put } from "../dom";
import type { Page } from "../router";

/** "a=1\nb=2" → {a:"1", b:"2"}; a line without "=" is an error. */
export function parseProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (!line) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`properties, line ${i + 1}: expected key=value`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1).trim();
  }
  return out;
}

export const producePage: Page = (root, { query }) => {
  document.title = "Produce · OrbitMQ";
  const topics = h("datalist", { id: "produce-topics" });
  const topic = h("input", { name: "topic", required: true, list: "produce-topics", value: query.get("topic") ?? "", "data-testid": "produce-topic" });
  const tag = h("input", { name: "tag", placeholder: "optional", "data-testid": "produce-tag" });
  const keys = h("input", { name: "keys", placeholder: "optional, comma separated", "data-testid": "produce-keys" });
  const props = h("textarea", { name: "properties", rows: 3, placeholder: "key=value, one per line", "data-testid": "produce-properties" });
  const body = h("textarea", { name: "body", rows: 6, "data-testid": "produce-body" });
  const submit = h("button", { type: "submit", "data-testid": "produce-submit" }, "Send");
  const receipt = h("div", { "data-testid": "produce-result" });
  const form = h(
    "form",
    { class: "card form", "data-testid": "produce-form" },
    h("div", { class: "row" }, field("Topic", topic), field("Tag", tag), field("Keys", keys)),
    topics,
    field("Properties", props),
    field("Body (UTF-8 text)", body),
    submit,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(submit, async () => {
      try {
        const ks = keys.value.split(",").map((k) => k.trim()).filter(Boolean);
        const r = await api.produce({
          topic: topic.value.trim(),
          body: body.value,
          tag: tag.value.trim() || undefined,
          keys: ks.length ? ks : undefined,
          properties: props.value.trim() ? parseProperties(props.value) : undefined,
        });
        put(
          receipt,
          h(
            "div",
            { class: "card ok-card", "data-testid": "produce-receipt" },
            h("h2", {}, "Sent"),
            h(
              "dl",
              { class: "kv" },
              h("dt", {}, "Message id"), h("dd", { "data-testid": "produce-message-id" }, r.message_id),
              h("dt", {}, "Topic"), h("dd", {}, r.topic),
              h("dt", {}, "Queue / offset"), h("dd", {}, `${r.queue_id} / ${r.offset}`),
            ),
            h("p", {}, link(`/messages?${new URLSearchParams({ id: r.message_id })}`, "Look it up", "produce-lookup")),
          ),
        );
      } catch (err) {
        put(receipt, errorBox(err));
      }
    });
  });
  put(root, h("h1", {}, "Produce a message"), form, receipt);
  api.topics().then(
    (ts) => put(topics, ts.map((t) => h("option", { value: t.name }))),
    () => {}, // the list only helps typing; a failure shows on send
  );
};
