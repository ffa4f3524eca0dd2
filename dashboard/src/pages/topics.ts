// Topics: the list and the create form (/topics); one topic's config, update form, queues and route (/topics/{topic}).
import { api, MESSAGE_TYPES, TopicConfig } from "../api";
import { busy, errorBox, field, fmtTime, h, link, put, section, table, permText } from "../dom";
import { navigate, type Page } from "../router";

function typeSelect(testid: string, value = "NORMAL"): HTMLSelectElement {
  return h(
    "select",
    { name: "message_type", "data-testid": testid },
    MESSAGE_TYPES.map((t) => h("option", { value: t, selected: t === value }, t)),
  );
}

function permSelect(testid: string, value = 6): HTMLSelectElement {
  return h(
    "select",
    { name: "perm", "data-testid": testid },
    [
      [6, "6 read + write"],
      [4, "4 read only"],
      [2, "2 write only"],
    ].map(([v, t]) => h("option", { value: v, selected: v === value }, t)),
  );
}

function num(testid: string, value: number | string, name: string): HTMLInputElement {
  return h("input", { type: "number", min: 1, max: 1024, value, name, required: true, "data-testid": testid });
}

export function topicsTable(topics: TopicConfig[]): HTMLElement {
  return table(
    ["Topic", "Read queues", "Write queues", "Perm", "Message type"],
    topics.map((t) => [link(`/topics/${encodeURIComponent(t.name)}`, t.name, "topic-link"), t.read_queues, t.write_queues, permText(t.perm), t.message_type]),
    "topics-table",
  );
}

export const topicsPage: Page = (root) => {
  document.title = "Topics · OrbitMQ";
  const listEl = h("div", {});
  const system = h("input", { type: "checkbox", "data-testid": "topics-system" });
  const load = () => section(listEl, async () => topicsTable(await api.topics(system.checked)));
  system.addEventListener("change", () => void load());

  const name = h("input", { name: "name", required: true, placeholder: "orders", "data-testid": "topic-create-name" });
  const rq = num("topic-create-read", 8, "read_queues");
  const wq = num("topic-create-write", 8, "write_queues");
  const perm = permSelect("topic-create-perm");
  const type = typeSelect("topic-create-type");
  const submit = h("button", { type: "submit", "data-testid": "topic-create-submit" }, "Create topic");
  const result = h("div", { "data-testid": "topic-create-result" });
  const form = h(
    "form",
    { class: "card form", "data-testid": "topic-create-form" },
    h("h2", {}, "Create a topic"),
    h("div", { class: "row" }, field("Name", name), field("Read queues", rq), field("Write queues", wq), field("Perm", perm), field("Message type", type)),
    submit,
    result,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(submit, async () => {
      try {
        const t = await api.createTopic({
          name: name.value.trim(),
          read_queues: rq.valueAsNumber,
          write_queues: wq.valueAsNumber,
          perm: Number(perm.value),
          message_type: type.value,
        });
        put(result, h("p", { class: "ok" }, "Created ", link(`/topics/${encodeURIComponent(t.name)}`, t.name, "topic-created-link"), "."));
        form.reset();
        await load();
      } catch (err) {
        put(result, errorBox(err));
      }
    });
  });

  put(root, h("h1", {}, "Topics"), form, h("section", { class: "card" }, h("h2", {}, "Topics"), h("label", { class: "inline" }, system, " include system topics"), listEl));
  void load();
};

export const topicPage: Page = (root, { params }) => {
  const topic = params.topic;
  document.title = `${topic} · Topics · OrbitMQ`;
  const configEl = h("div", {});
  const statusEl = h("div", {});
  const routeEl = h("div", {});
  put(
    root,
    h("p", { class: "crumbs" }, link("/topics", "Topics"), " / "),
    h("h1", { "data-testid": "topic-name" }, topic),
    h("section", { class: "card" }, h("h2", {}, "Configuration"), configEl),
    h("section", { class: "card" }, h("h2", {}, "Queues"), statusEl),
    h("section", { class: "card" }, h("h2", {}, "Route"), routeEl),
  );

  function updateForm(t: TopicConfig): HTMLElement {
    const rq = num("topic-update-read", t.read_queues, "read_queues");
    const wq = num("topic-update-write", t.write_queues, "write_queues");
    const perm = permSelect("topic-update-perm", t.perm);
    const type = typeSelect("topic-update-type", String(t.message_type));
    const submit = h("button", { type: "submit", "data-testid": "topic-update-submit" }, "Update");
    const result = h("div", { "data-testid": "topic-update-result" });
    const form = h(
      "form",
      { class: "form", "data-testid": "topic-update-form" },
      h("div", { class: "row" }, field("Read queues", rq), field("Write queues", wq), field("Perm", perm), field("Message type", type)),
      submit,
      result,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void busy(submit, async () => {
        try {
          const u = await api.updateTopic(topic, {
            read_queues: rq.valueAsNumber,
            write_queues: wq.valueAsNumber,
            perm: Number(perm.value),
            message_type: type.value,
          });
          put(result, h("p", { class: "ok" }, `Updated: ${u.read_queues} read / ${u.write_queues} write queues, perm ${permText(u.perm)}, ${u.message_type}.`));
          void loadQueues();
        } catch (err) {
          put(result, errorBox(err));
        }
      });
    });
    return form;
  }

  const loadQueues = () =>
    Promise.all([
      section(statusEl, async () => {
        const s = await api.topicStatus(topic);
        const q = (id: number, off: number) =>
          link(`/messages?topic=${encodeURIComponent(topic)}&queue=${id}&offset=${off}`, String(off));
        return table(
          ["Broker", "Queue", "Min offset", "Max offset", "Messages", "Last stored"],
          s.queues.map((x) => [
            x.broker_name,
            x.queue_id,
            x.min_offset,
            x.max_offset,
            x.max_offset - x.min_offset,
            x.max_offset > x.min_offset ? h("span", {}, fmtTime(x.last_store_timestamp), " (last: ", q(x.queue_id, x.max_offset - 1), ")") : "—",
          ]),
          "topic-status",
        );
      }),
      section(routeEl, async () => {
        const r = await api.topicRoute(topic);
        return table(
          ["Broker", "Broker id", "Address", "Queue", "Perm"],
          r.queues.map((x) => [x.broker_name, x.broker_id, x.address, x.queue_id, x.perm]),
          "topic-route",
        );
      }),
    ]);

  void section(configEl, async () => {
    const t = await api.topic(topic);
    return [
      h("dl", { class: "kv", "data-testid": "topic-config" }, [
        h("dt", {}, "Read queues"), h("dd", {}, t.read_queues),
        h("dt", {}, "Write queues"), h("dd", {}, t.write_queues),
        h("dt", {}, "Perm"), h("dd", {}, permText(t.perm)),
        h("dt", {}, "Message type"), h("dd", {}, t.message_type),
      ]),
      h("h3", { class: "spaced" }, "Change"),
      updateForm(t),
      h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => navigate(`/produce?topic=${encodeURIComponent(topic)}`) }, "Produce to this topic")),
    ];
  });
  void loadQueues();
};
