// One map cell: start the computation, poll its job (progress, cancel), then show the map
// over the image, its colour bar, its scores on this image, its time, and a PNG download.
import { ApiError, call, cancelJob, url } from "./api.js";
import { clear, el, number, seconds } from "./dom.js";

const ARROW = { true: "↑", false: "↓" };
const LABELS = {
  road_combined: "ROAD (LeRF−MoRF)/2", road_morf: "ROAD MoRF", road_lerf: "ROAD LeRF",
  deletion: "deletion AUC", deletion_random: "  random map", insertion: "insertion AUC",
  insertion_random: "  random map", infidelity: "infidelity", completeness_gap: "completeness gap",
  sparseness: "sparseness", complexity: "complexity",
};

// At most this many cells talk to the server at once (a long poll holds a connection, and a
// browser opens only six to one server): the others wait their turn, the page stays responsive.
const ACTIVE = 3;
let active = 0;
const waiting = [];

async function turn() {
  if (active < ACTIVE) { active += 1; return; }
  await new Promise((resolve) => waiting.push(resolve));
}

function done() {
  const next = waiting.shift();
  if (next) next();
  else active -= 1;
}

function safeName(text) {
  return String(text).replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 80);
}

export class MapCell {
  constructor({ run, method, image, cls, layer, opacity, showRun }) {
    this.run = run;
    this.method = method;
    this.params = { run: run.index, image, method: method.name, class: cls, layer: method.uses_layer ? layer : "" };
    this.key = JSON.stringify(this.params);
    this.opacity = opacity;
    this.aborted = false;
    this.job = null;
    const title = el("figcaption", { class: "map-title" },
      el("strong", { text: method.name }),
      showRun ? el("span", { class: "muted", text: ` · ${run.name}` }) : null);
    title.title = method.description || method.name;
    this.stack = el("div", { class: "stack" });
    this.status = el("div", { class: "map-status" });
    this.details = el("div", { class: "map-details" });
    this.node = el("figure", { class: "map-cell", dataset: { method: method.name, run: String(run.index) } },
      title, this.stack, this.status, this.details);
  }

  async start() {
    this.cancelRequested = false;
    this.showProgress({ phase: "waiting", model_calls: 0, seconds: 0, fraction: null });
    await turn();
    try {
      if (this.cancelRequested) this.showCancelled();
      else if (!this.aborted) await this.compute();
    } finally {
      done();
    }
  }

  async compute() {
    try {
      let { status, body } = await call("/api/map", { ...this.params, wait: 0.25 });
      while (status === 202 && !this.aborted) {
        if (this.job !== body.job && this.cancelRequested) cancelJob(body.job);
        this.job = body.job;
        this.showProgress(body.progress);
        ({ status, body } = await call(`/api/jobs/${encodeURIComponent(body.job)}`, { wait: 1 }));
        if (body.status === "cancelled") break;
      }
      this.job = null;
      if (this.aborted) return;
      if (body.status === "cancelled") this.showCancelled();
      else if (body.status === "done") this.show(body);
      else this.showError(body.error || `error ${status}`);
    } catch (err) {
      if (!this.aborted) this.showError(err instanceof ApiError ? err.message : String(err));
    }
  }

  // Stop polling; the server's job is cancelled too (a new view does not wait behind it).
  abort() {
    this.aborted = true;
    if (this.job) cancelJob(this.job);
  }

  showProgress(progress) {
    const bar = el("progress", { max: 1, "aria-label": `computing ${this.method.name}` });
    if (progress.fraction !== null && progress.fraction !== undefined) bar.value = progress.fraction;
    const text = `${progress.phase} · ${progress.model_calls} model passes · ${seconds(progress.seconds || 0)}`;
    const cancel = el("button", { type: "button", class: "cancel", text: "Cancel", disabled: this.cancelRequested, onclick: () => {
      // before the server has named the job, the cancel waits for its name
      this.cancelRequested = true;
      if (this.job) cancelJob(this.job);
      cancel.disabled = true;
    } });
    clear(this.status).append(bar, el("span", { class: "muted", text }), cancel);
    this.status.hidden = false;
    this.node.classList.add("busy");
  }

  showCancelled() {
    this.node.classList.remove("busy");
    clear(this.status).append(el("span", { class: "muted", text: "cancelled" }),
      el("button", { type: "button", text: "Compute again", onclick: () => { this.aborted = false; this.start(); } }));
  }

  showError(message) {
    this.node.classList.remove("busy");
    this.node.classList.add("failed");
    clear(this.status).append(el("p", { class: "error", role: "alert", text: message }));
  }

  show(result) {
    this.node.classList.remove("busy");
    this.result = result;
    const base = el("img", { class: "base", alt: "", src: url("/api/image.png", { image: this.params.image, run: this.run.index }) });
    this.heat = el("img", { class: "heat", alt: `${result.method} map for class ${result.class_name}`, src: `/api/map.png?${result.query}&kind=heat` });
    this.heat.style.opacity = String(this.opacity);
    clear(this.stack).append(base, this.heat);
    clear(this.status);
    this.status.hidden = true;
    const [low, high] = result.scale;
    const bar = el("div", { class: "colorbar", title: "colour scale in the map's own units (1.0 = its 99.5th percentile of |value|)" },
      el("img", { src: url("/api/colorbar.png", { signed: result.signed ? 1 : 0 }), alt: "colour scale" }),
      el("div", { class: "colorbar-labels muted" },
        el("span", { text: number(low) }),
        result.signed ? el("span", { text: "0" }) : null,
        el("span", { text: number(high) })));
    const rows = result.scores.map((s) => el("tr", { title: s.description },
      el("th", { scope: "row", text: LABELS[s.metric] || s.metric }),
      el("td", { text: number(s.value) }),
      el("td", { class: "muted", text: s.metric.endsWith("_random") ? "" : ARROW[s.higher_is_better] })));
    const table = el("table", { class: "scores" },
      el("caption", { class: "muted", text: `scores on this image, class ${result.class} (${result.class_name})` }),
      el("tbody", {}, rows));
    const timing = el("p", { class: "muted timing", text:
      `map ${seconds(result.seconds.map)} · scores ${seconds(result.seconds.scores)} on ${this.run.device}` +
      (result.layer ? ` · layer ${result.layer}` : "") + (result.cached ? " · cached" : "") });
    this.download = el("a", { class: "download", text: "Download PNG" });
    this.setOpacity(this.opacity);
    clear(this.details).append(bar, table, timing, this.download);
  }

  setOpacity(opacity) {
    this.opacity = opacity;
    if (this.heat) this.heat.style.opacity = String(opacity);
    if (this.download && this.result) {
      const r = this.result;
      this.download.href = `/api/map.png?${r.query}&kind=overlay&scale=8&alpha=${opacity}`;
      this.download.setAttribute("download",
        `${safeName(this.run.name)}-${safeName(r.image)}-${safeName(r.method)}-${safeName(r.class_name)}.png`);
    }
  }
}
