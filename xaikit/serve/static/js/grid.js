// The grid of a run's test images: filters, sorting, paging; a click chooses an image.
import { get, url } from "./api.js";
import { $, clear, el, percent, showError } from "./dom.js";

const PAGE = 48;

export class Grid {
  constructor(info, onPick, onChange) {
    this.info = info;
    this.onPick = onPick;
    this.onChange = onChange;
    this.generation = 0;
    this.selected = null;
    const runSelect = $("grid-run");
    info.runs.forEach((run) => runSelect.append(el("option", { value: String(run.index), text: `${run.index}: ${run.name}` })));
    $("grid-run-label").hidden = info.runs.length < 2;
    for (const id of ["grid-run", "f-class", "f-outcome", "f-min", "f-max", "f-sort", "f-order"]) {
      $(id).addEventListener("change", () => this.readControls());
    }
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("prev").addEventListener("click", () => this.page(-1));
    $("next").addEventListener("click", () => this.page(1));
  }

  setFilters(filters) {
    this.filters = { ...filters };
    const run = this.info.runs[filters.run];
    const classSelect = $("f-class");
    clear(classSelect).append(el("option", { value: "", text: "all classes" }));
    run.classes.forEach((name, i) => classSelect.append(el("option", { value: String(i), text: `${i} · ${name}` })));
    $("grid-run").value = String(filters.run);
    classSelect.value = filters.fclass;
    $("f-outcome").value = filters.outcome;
    $("f-min").value = String(filters.min_conf);
    $("f-max").value = String(filters.max_conf);
    $("f-sort").value = filters.sort;
    $("f-order").value = filters.order;
    return this.load();
  }

  readControls() {
    const clamp = (v, fallback) => (Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : fallback);
    const run = Number($("grid-run").value);
    const filters = {
      run,
      fclass: run === this.filters.run ? $("f-class").value : "",
      outcome: $("f-outcome").value,
      min_conf: clamp(parseFloat($("f-min").value), 0),
      max_conf: clamp(parseFloat($("f-max").value), 1),
      sort: $("f-sort").value,
      order: $("f-order").value,
      offset: 0,
    };
    this.onChange(filters);
    this.setFilters(filters);
  }

  page(step) {
    const offset = Math.max(0, this.filters.offset + step * PAGE);
    if (this.total !== undefined && offset >= this.total) return;
    this.filters = { ...this.filters, offset };
    this.onChange(this.filters);
    this.load();
  }

  markSelected(ref) {
    this.selected = ref;
    for (const button of $("grid").querySelectorAll(".thumb")) {
      button.classList.toggle("selected", button.dataset.image === ref);
      button.setAttribute("aria-pressed", button.dataset.image === ref ? "true" : "false");
    }
  }

  async load() {
    const generation = ++this.generation;
    const f = this.filters;
    const grid = $("grid");
    grid.classList.add("loading");
    let listing;
    try {
      listing = await get("/api/images", {
        run: f.run, class: f.fclass, outcome: f.outcome, min_conf: f.min_conf, max_conf: f.max_conf,
        sort: f.sort, order: f.order, offset: f.offset, limit: PAGE,
      });
    } catch (err) {
      if (generation === this.generation) {
        grid.classList.remove("loading");
        showError($("grid-count"), err.message);
      }
      return;
    }
    if (generation !== this.generation) return;
    grid.classList.remove("loading");
    this.total = listing.total;
    const classes = this.info.runs[f.run].classes;
    clear(grid);
    for (const item of listing.items) {
      const wrong = item.pred !== item.label;
      const caption = `${classes[item.label]} → ${classes[item.pred]} ${percent(item.confidence)}`;
      const button = el("button", {
        type: "button", class: `thumb${wrong ? " wrong" : ""}`, dataset: { image: item.image },
        title: `test image ${item.index}: ${caption}, loss ${item.loss.toFixed(3)}`,
        "aria-pressed": item.image === this.selected ? "true" : "false",
        onclick: () => this.onPick(item.image),
      },
      el("img", { src: url("/api/image.png", { image: item.image }), alt: `test image ${item.index}`, width: 64, height: 64, loading: "lazy" }),
      el("span", { class: "thumb-caption", text: `${wrong ? "✗ " : ""}${classes[item.pred]} ${Math.round(100 * item.confidence)}%` }));
      if (item.image === this.selected) button.classList.add("selected");
      grid.append(button);
    }
    const first = listing.total ? f.offset + 1 : 0;
    const last = f.offset + listing.items.length;
    $("grid-count").hidden = false;
    $("grid-count").textContent = `${listing.total.toLocaleString()} images match`;
    $("page").textContent = listing.total ? `${first}–${last} of ${listing.total.toLocaleString()}` : "none";
    $("prev").disabled = f.offset === 0;
    $("next").disabled = last >= listing.total;
  }
}
