// Overview: the server, the brokers, and live charts of messages in/out per second and disk use.
import uPlot from "uplot";
import { api, Broker, Info, Metrics } from "../api";
import { errorBox, fmtAgo, fmtBytes, fmtDuration, fmtTime, h, put, section, table } from "../dom";
import type { Page } from "../router";

const POLL_MS = 2000;

function infoCard(i: Info): HTMLElement {
  const rows: [string, string][] = [
    ["Mode", i.mode],
    ["Version", i.version],
    ["gRPC address", i.grpc_address],
    ["Console", i.listen],
    ["Started", `${fmtTime(i.started_at)} (up ${fmtDuration(Date.now() - i.started_at)})`],
    ["Credentials", i.auth_required ? "required" : "none"],
  ];
  return h("dl", { class: "kv", "data-testid": "server-info" }, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function brokersTable(brokers: Broker[]): HTMLElement {
  return table(
    ["Cluster", "Broker", "Id", "Role", "Address", "Version", "Uptime", "Last heartbeat", "Topics", "CommitLog max", "Replication lag"],
    brokers.map((b) => [
      b.cluster,
      b.broker_name,
      b.broker_id,
      b.role,
      b.address,
      b.version,
      fmtDuration(Date.now() - b.started_at),
      fmtAgo(b.last_heartbeat),
      b.topics,
      b.commitlog_max_offset,
      fmtBytes(b.replication_lag),
    ]),
    "brokers",
  );
}

/** Tick steps for bytes: 1, 2, 4 … 512 of B, KiB, MiB, GiB, TiB (ticks land on round binary sizes). */
const BYTE_STEPS = [0, 1, 2, 3, 4].flatMap((k) => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((x) => x * 1024 ** k));

function chart(title: string, series: uPlot.Series[], fmt: (v: number) => string, el: HTMLElement, incrs?: number[]): uPlot {
  const opts: uPlot.Options = {
    title,
    width: Math.max(320, Math.min(el.clientWidth || 560, 900)),
    height: 220,
    // Rates and bytes are never negative: the y axis starts at 0.
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [{}, { values: (_u, vals) => vals.map((v) => fmt(v)), size: 70, incrs }],
    series: [{}, ...series],
  };
  return new uPlot(opts, [[], ...series.map(() => [])] as uPlot.AlignedData, el);
}

export const overviewPage: Page = (root) => {
  document.title = "Overview · OrbitMQ";
  const infoEl = h("div", {});
  const brokersEl = h("div", {});
  const chartsErr = h("div", {});
  const rateEl = h("div", { class: "chart", "data-testid": "chart-rate" });
  const diskEl = h("div", { class: "chart", "data-testid": "chart-disk" });
  const latest = h("p", { class: "muted", "data-testid": "metrics-latest" });
  put(
    root,
    h("h1", {}, "Overview"),
    h("section", { class: "card" }, h("h2", {}, "Server"), infoEl),
    h("section", { class: "card" }, h("h2", {}, "Brokers"), brokersEl),
    h("section", { class: "card" }, h("h2", {}, "Throughput and disk"), chartsErr, latest, h("div", { class: "charts" }, rateEl, diskEl)),
  );

  let rate: uPlot | null = null;
  let disk: uPlot | null = null;
  let stopped = false;
  let first = true;

  function draw(m: Metrics): void {
    const xs = m.points.map((p) => p.t / 1000);
    if (!rate) {
      rate = chart(
        "Messages per second",
        [
          { label: "in/s", stroke: "#2563eb", width: 2 },
          { label: "out/s", stroke: "#16a34a", width: 2 },
        ],
        (v) => String(Number(v.toFixed(2))),
        rateEl,
      );
      disk = chart("Disk use", [{ label: "disk", stroke: "#9333ea", width: 2, fill: "rgba(147,51,234,0.08)" }], fmtBytes, diskEl, BYTE_STEPS);
    }
    rate.setData([xs, m.points.map((p) => p.in_per_s), m.points.map((p) => p.out_per_s)]);
    disk!.setData([xs, m.points.map((p) => p.disk_bytes)]);
    const last = m.points[m.points.length - 1];
    latest.textContent = last
      ? `Now: ${last.in_per_s.toFixed(1)} in/s, ${last.out_per_s.toFixed(1)} out/s, ${fmtBytes(last.disk_bytes)} on disk (sampled every ${m.interval_ms / 1000} s, last 10 minutes)`
      : "No samples yet.";
  }

  async function poll(): Promise<void> {
    const quiet = !first;
    first = false;
    await Promise.all([
      section(infoEl, async () => infoCard(await api.info()), quiet),
      section(brokersEl, async () => brokersTable((await api.cluster()).brokers), quiet),
      (async () => {
        try {
          draw(await api.metrics());
          put(chartsErr);
        } catch (e) {
          put(chartsErr, errorBox(e));
        }
      })(),
    ]);
  }

  const width = (el: HTMLElement) => Math.max(320, Math.min(el.clientWidth || 560, 900));
  const onResize = () => {
    rate?.setSize({ width: width(rateEl), height: 220 });
    disk?.setSize({ width: width(diskEl), height: 220 });
  };
  window.addEventListener("resize", onResize);

  let timer = 0;
  const loop = async () => {
    await poll();
    if (!stopped) timer = window.setTimeout(loop, POLL_MS);
  };
  void loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
    window.removeEventListener("resize", onResize);
    rate?.destroy();
    disk?.destroy();
  };
};
