// Consumer groups: the list and the create form (/groups); one group's members, lag, dead letters,
// in-flight messages and the offset reset by time (/groups/{group}).
import { api, CONSUME_FROM, Group, GroupProgress } from "../api";
import { busy, errorBox, field, fmtAgo, fmtTime, h, link, put, section, table } from "../dom";
import { navigate, type Page } from "../router";

const POLL_MS = 2000;

function groupsTable(groups: Group[]): HTMLElement {
  return table(
    ["Group", "FIFO", "Max delivery attempts", "Consume from"],
    groups.map((g) => [link(`/groups/${encodeURIComponent(g.name)}`, g.name, "group-link"), g.fifo ? "yes" : "no", g.max_delivery_attempts, g.consume_from]),
    "groups-table",
  );
}

export const groupsPage: Page = (root) => {
  document.title = "Consumer groups · OrbitMQ";
  const listEl = h("div", {});
  const load = () => section(listEl, async () => groupsTable(await api.groups()));

  const name = h("input", { name: "name", required: true, placeholder: "billing", "data-testid": "group-create-name" });
  const fifo = h("input", { type: "checkbox", name: "fifo", "data-testid": "group-create-fifo" });
  const max = h("input", { type: "number", min: 1, max: 1000, name: "max_delivery_attempts", placeholder: "17", "data-testid": "group-create-max-attempts" });
  const from = h(
    "select",
    { name: "consume_from", "data-testid": "group-create-consume-from" },
    h("option", { value: "" }, "server default"),
    CONSUME_FROM.map((c) => h("option", { value: c }, c)),
  );
  const submit = h("button", { type: "submit", "data-testid": "group-create-submit" }, "Create group");
  const result = h("div", { "data-testid": "group-create-result" });
  const form = h(
    "form",
    { class: "card form", "data-testid": "group-create-form" },
    h("h2", {}, "Create a consumer group"),
    h(
      "div",
      { class: "row" },
      field("Name", name),
      field("Max delivery attempts", max, "deliveries before the dead-letter topic"),
      field("Consume from", from, "where a new queue starts"),
      h("label", { class: "inline" }, fifo, " FIFO (in order per message group)"),
    ),
    submit,
    result,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void busy(submit, async () => {
      try {
        const r = await api.createGroup({
          name: name.value.trim(),
          fifo: fifo.checked,
          max_delivery_attempts: max.value ? max.valueAsNumber : undefined,
          consume_from: from.value || undefined,
        });
        const g = r.group;
        put(result, h("p", { class: "ok" }, r.created ? "Created " : "Updated ", link(`/groups/${encodeURIComponent(g.name)}`, g.name, "group-created-link"), "."));
        form.reset();
        await load();
      } catch (err) {
        put(result, errorBox(err));
      }
    });
  });

  put(root, h("h1", {}, "Consumer groups"), form, h("section", { class: "card" }, h("h2", {}, "Groups"), listEl));
  void load();
};

function progressView(p: GroupProgress): HTMLElement[] {
  return [
    h(
      "div",
      { class: "stats" },
      h("div", { class: "stat" }, h("span", {}, "Total lag"), h("strong", { "data-testid": "group-total-lag" }, p.total_lag)),
      h("div", { class: "stat" }, h("span", {}, "Dead letters"), h("strong", { "data-testid": "group-dead-letters" }, p.dead_letters)),
      h("div", { class: "stat" }, h("span", {}, "In flight"), h("strong", { "data-testid": "group-inflight" }, p.inflight)),
    ),
    table(
      ["Topic", "Broker", "Queue", "Broker offset", "Consumer offset", "Lag"],
      p.queues.map((q) => [link(`/topics/${encodeURIComponent(q.topic)}`, q.topic), q.broker_name, q.queue_id, q.broker_offset, q.consumer_offset, q.lag]),
      "group-progress",
    ),
  ];
}

/** "yyyy-MM-ddTHH:mm:ss" in local time, what a datetime-local input holds. */
function localInputValue(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export const groupPage: Page = (root, { params, query }) => {
  const group = params.group;
  // Without a topic the server lists only the topics the group has offsets on (none for a new group).
  const only = query.get("topic") ?? "";
  document.title = `${group} · Consumer groups · OrbitMQ`;
  const progressEl = h("div", { "data-testid": "group-progress-section" });
  const membersEl = h("div", {});
  const updated = h("span", { class: "muted", "data-testid": "group-updated" });

  // Which topic's progress to show.
  const topicList = h("datalist", { id: "group-topics" });
  const filter = h("input", { name: "topic", list: "group-topics", value: only, placeholder: "every topic with offsets", "data-testid": "progress-topic" });
  const filterForm = h(
    "form",
    { class: "form row", "data-testid": "progress-topic-form" },
    field("Topic", filter),
    h("button", { type: "submit", class: "secondary", "data-testid": "progress-topic-submit" }, "Show"),
  );
  filterForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const t = filter.value.trim();
    navigate(`/groups/${encodeURIComponent(group)}${t ? `?topic=${encodeURIComponent(t)}` : ""}`);
  });
  api.topics().then(
    (ts) => put(topicList, ts.map((t) => h("option", { value: t.name }))),
    () => {}, // the list only helps typing
  );

  // The reset form and its confirmation dialog.
  const topic = h("input", { name: "topic", required: true, list: "group-topics", value: only, placeholder: "topic", "data-testid": "reset-topic" });
  const when = h("input", { type: "datetime-local", step: 1, required: true, name: "timestamp", value: localInputValue(new Date(Date.now() - 3600_000)), "data-testid": "reset-time" });
  const submit = h("button", { type: "submit", class: "danger", "data-testid": "reset-submit" }, "Reset offsets…");
  const resetResult = h("div", { "data-testid": "reset-result" });
  const tz = -new Date().getTimezoneOffset() / 60;
  const form = h(
    "form",
    { class: "form", "data-testid": "reset-form" },
    h("div", { class: "row" }, field("Topic", topic), field("Time", when, `this browser's local time (UTC${tz >= 0 ? "+" : ""}${tz})`)),
    submit,
    resetResult,
  );
  const dialogText = h("p", {});
  const confirm = h("button", { type: "button", class: "danger", "data-testid": "reset-confirm" }, "Confirm");
  const cancel = h("button", { type: "button", class: "secondary", "data-testid": "reset-cancel" }, "Cancel");
  const dialog = h("dialog", { "data-testid": "reset-dialog" }, h("h2", {}, "Reset offsets?"), dialogText, h("div", { class: "buttons" }, cancel, confirm));
  let pending: { topic: string; ts: number } | null = null;

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const ts = new Date(when.value).getTime();
    if (Number.isNaN(ts)) {
      put(resetResult, errorBox(new Error("pick a date and time")));
      return;
    }
    pending = { topic: topic.value.trim(), ts };
    put(
      dialogText,
      `Group ${group} will consume ${pending.topic} again from the first message stored at or after ${fmtTime(ts)} `,
      `(${new Date(ts).toISOString()}). Messages after that point are delivered again; those before are skipped.`,
    );
    dialog.showModal();
  });
  cancel.addEventListener("click", () => {
    pending = null;
    dialog.close();
  });
  confirm.addEventListener("click", () => {
    const p = pending;
    dialog.close();
    if (!p) return;
    void busy(submit, async () => {
      try {
        const r = await api.resetGroup(group, p.topic, p.ts);
        put(
          resetResult,
          h("p", { class: "ok" }, `Reset ${r.length} queue(s).`),
          table(["Broker", "Queue", "Old offset", "New offset"], r.map((x) => [x.broker_name, x.queue_id, x.old_offset, x.new_offset]), "reset-table"),
        );
        await refresh(true);
      } catch (err) {
        put(resetResult, errorBox(err));
      }
    });
  });

  put(
    root,
    h("p", { class: "crumbs" }, link("/groups", "Consumer groups"), " / "),
    h("h1", { "data-testid": "group-name" }, group),
    h("section", { class: "card" }, h("h2", {}, "Progress ", updated), filterForm, topicList, progressEl),
    h("section", { class: "card" }, h("h2", {}, "Members"), membersEl),
    h("section", { class: "card" }, h("h2", {}, "Reset offsets by time"), form),
    dialog,
  );

  let first = true;
  async function refresh(quiet = !first): Promise<void> {
    first = false;
    await Promise.all([
      section(
        progressEl,
        async () => {
          const p = await api.groupProgress(group, only || undefined);
          const ts = [...new Set(p.queues.map((q) => q.topic))];
          if (!topic.value && ts.length === 1) topic.value = ts[0];
          updated.textContent = `(updated ${fmtTime(Date.now())}, every ${POLL_MS / 1000} s)`;
          return [
            progressView(p),
            p.queues.length || only ? null : h("p", { class: "muted" }, "The group has no offsets yet: name a topic above to see its lag."),
          ];
        },
        quiet,
      ),
      section(
        membersEl,
        async () =>
          table(
            ["Client", "Type", "Language", "Version", "Host", "Last seen", "Topics"],
            (await api.groupMembers(group)).map((m) => [m.client_id, m.client_type, m.language, m.version, m.host, fmtAgo(m.last_seen), m.topics.join(", ")]),
            "group-members",
          ),
        quiet,
      ),
    ]);
  }

  let stopped = false;
  let timer = 0;
  const loop = async () => {
    await refresh();
    if (!stopped) timer = window.setTimeout(loop, POLL_MS);
  };
  void loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (dialog.open) dialog.close();
  };
};
