// The chosen image: its predictions through every served model, the map controls, and the
// grid of maps (rows: methods; columns: runs).
import { ApiError, get, url } from "./api.js";
import { $, clear, el, percent } from "./dom.js";
import { MapCell } from "./maps.js";

export class Viewer {
  constructor(info, onChange) {
    this.info = info;
    this.onChange = onChange;
    this.cells = [];
    this.generation = 0;
    this.byName = new Map(info.methods.map((m) => [m.name, m]));
    this.buildMethodList();
    this.buildLayerSelects();
    $("class").addEventListener("change", () => this.change({ cls: $("class").value }));
    $("opacity").addEventListener("input", () => this.setOpacity(Number($("opacity").value)));
    $("opacity").addEventListener("change", () => this.onChange({ opacity: this.state.opacity }, false));
    $("method-search").addEventListener("input", () => this.filterMethods($("method-search").value));
    $("copy-link").addEventListener("click", () => this.copyLink());
  }

  buildMethodList() {
    const list = $("methods");
    for (const m of this.info.methods) {
      const box = el("input", { type: "checkbox", value: m.name, onchange: () => this.toggleMethod(m.name, box.checked) });
      const label = el("label", { class: "method", dataset: { name: m.name } }, box,
        el("span", { text: m.name }), m.uses_layer ? el("span", { class: "tag", text: "CAM" }) : null,
        m.signed ? el("span", { class: "tag", text: "±" }) : null);
      label.title = `${m.description || m.name} (plugin ${m.plugin})`;
      list.append(label);
    }
  }

  filterMethods(text) {
    const needle = text.trim().toLowerCase();
    for (const label of $("methods").querySelectorAll(".method")) {
      label.hidden = needle !== "" && !label.dataset.name.toLowerCase().includes(needle);
    }
  }

  buildLayerSelects() {
    const box = clear($("layers"));
    this.layerSelects = this.info.runs.map((run) => {
      const select = el("select", { id: `layer-${run.index}`, disabled: run.layers.length === 0 },
        el("option", { value: "", text: run.default_layer ? `default (${run.default_layer})` : "no spatial layer" }),
        run.layers.map((name) => el("option", { value: name, text: name })));
      select.addEventListener("change", () => {
        const layers = [...this.state.layers];
        layers[run.index] = select.value;
        this.change({ layers });
      });
      box.append(el("label", { class: "control-title", for: select.id,
        text: this.info.runs.length > 1 ? `CAM layer of ${run.name}` : "CAM layer" }), select);
      return select;
    });
  }

  toggleMethod(name, on) {
    const methods = this.state.methods.filter((m) => m !== name);
    if (on) methods.push(name);
    this.change({ methods });
  }

  change(patch) {
    this.onChange(patch, false);
  }

  setOpacity(opacity) {
    this.state.opacity = opacity;
    $("opacity-value").textContent = opacity.toFixed(2);
    this.cells.forEach((cell) => cell.setOpacity(opacity));
  }

  async copyLink() {
    try {
      await navigator.clipboard.writeText(location.href);
      $("copy-link").textContent = "Link copied";
    } catch {
      $("copy-link").textContent = "Copy the address bar";
    }
  }

  // Render the view for `state`; `what` says which parts changed (image, maps).
  async render(state, { image = true } = {}) {
    this.state = state;
    const generation = ++this.generation;
    $("empty").hidden = Boolean(state.image);
    $("chosen").hidden = !state.image;
    for (const box of $("methods").querySelectorAll("input")) box.checked = state.methods.includes(box.value);
    $("chosen-methods").textContent = state.methods.length
      ? `shown: ${state.methods.join(", ")}` : "no method chosen: tick one or more";
    this.layerSelects.forEach((select, i) => { select.value = state.layers[i] || ""; });
    $("opacity").value = String(state.opacity);
    $("opacity-value").textContent = state.opacity.toFixed(2);
    if (!state.image) return;
    if (image) {
      this.predictions = null;
      try {
        this.predictions = await Promise.all(this.info.runs.map((run) => get("/api/predict", { run: run.index, image: state.image })));
      } catch (err) {
        if (generation !== this.generation) return;
        this.showImageError(err);
        return;
      }
      if (generation !== this.generation) return;
      this.showImage(state);
    }
    this.buildClassSelect(state);
    this.showMaps(state);
  }

  showImageError(err) {
    clear($("image-figure")).append(el("p", { class: "error", role: "alert", text: err instanceof ApiError ? err.message : String(err) }));
    clear($("predictions"));
    this.cells.forEach((cell) => cell.abort());
    this.cells = [];
    clear($("maps"));
  }

  showImage(state) {
    const first = this.predictions[0];
    const upload = state.image.startsWith("u:");
    const figure = clear($("image-figure"));
    const caption = upload
      ? `your image${this.uploadName ? `: ${this.uploadName}` : ""} (${state.image})`
      : `test image ${state.image.split(":")[1]} of ${this.info.runs[Number(state.image.split(":")[0])].name}`;
    figure.append(el("img", { class: "big", src: url("/api/image.png", { image: state.image }), alt: caption }));
    if (upload && this.uploadPreview) figure.append(el("img", { class: "original", src: this.uploadPreview, alt: "the uploaded file" }));
    figure.append(el("p", { class: "caption", text: caption }));
    if (first.label_name !== null) figure.append(el("p", { text: `true class: ${first.label_name}` }));
    const box = clear($("predictions"));
    for (const [i, p] of this.predictions.entries()) {
      const run = this.info.runs[i];
      const verdict = p.correct === null ? "" : p.correct ? " ✓ correct" : " ✗ misclassified";
      const list = el("ol", { class: "topk" }, p.top.map((t) => el("li", { class: t.class === p.label ? "is-label" : "" },
        el("span", { class: "top-name", text: t.name }),
        el("progress", { max: 1, value: t.p, "aria-label": `${t.name} probability` }),
        el("span", { class: "top-p", text: percent(t.p) }))));
      box.append(el("div", { class: `prediction${p.correct === false ? " wrong" : ""}` },
        el("h3", {}, el("span", { text: `${run.name} (${run.model})` }), el("span", { class: "verdict", text: verdict })),
        el("p", { class: "muted", text: `predicts ${p.pred_name} ${percent(p.confidence)}` + (p.loss !== null ? ` · loss ${p.loss.toFixed(3)}` : "") }),
        list));
    }
  }

  buildClassSelect(state) {
    const select = clear($("class"));
    const classes = this.info.runs[0].classes;
    const upload = state.image.startsWith("u:");
    select.append(el("option", { value: "pred", text: "predicted class (each model's own)" }),
      el("option", { value: "true", text: "true class", disabled: upload }),
      ...classes.map((name, i) => el("option", { value: String(i), text: `${i} · ${name}` })));
    select.value = [...select.options].some((o) => o.value === state.cls && !o.disabled) ? state.cls : "pred";
  }

  showMaps(state) {
    const box = clear($("maps"));
    const runs = this.info.runs;
    box.classList.toggle("multi", runs.length > 1);
    box.style.setProperty("--runs", String(runs.length));
    if (runs.length > 1) {
      box.append(el("div", { class: "map-corner" }),
        ...runs.map((run) => el("div", { class: "map-head", text: `${run.name} (${run.model})` })));
    }
    // a cell whose map is the same (run, image, method, class, layer) is kept as it is
    const previous = new Map(this.cells.map((cell) => [cell.key, cell]));
    this.cells = [];
    const methods = state.methods.map((name) => this.byName.get(name)).filter(Boolean);
    for (const method of methods) {
      if (runs.length > 1) box.append(el("div", { class: "map-row-head", text: method.name }));
      for (const run of runs) {
        const fresh = new MapCell({ run, method, image: state.image, cls: state.cls, layer: state.layers[run.index],
          opacity: state.opacity, showRun: false });
        const cell = previous.get(fresh.key) || fresh;
        previous.delete(cell.key);
        cell.setOpacity(state.opacity);
        this.cells.push(cell);
        box.append(cell.node);
        if (cell === fresh) cell.start();
      }
    }
    previous.forEach((cell) => cell.abort());
  }
}
