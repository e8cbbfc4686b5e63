// The view's state and the URL: image, methods, class, layers, opacity and the grid filters
// live in the query string, so a view can be bookmarked or shared.

export const FILTER_DEFAULTS = {
  run: 0, fclass: "", outcome: "all", min_conf: 0, max_conf: 1, sort: "index", order: "asc", offset: 0,
};

export function readState(search, info) {
  const p = new URLSearchParams(search);
  const nRuns = info.runs.length;
  const registered = new Set(info.methods.map((m) => m.name));
  const methods = p.getAll("method").filter((m) => registered.has(m));
  const layers = p.getAll("layer");
  const num = (key, fallback, low, high) => {
    const value = Number(p.get(key));
    return p.get(key) !== null && p.get(key) !== "" && Number.isFinite(value) && value >= low && value <= high ? value : fallback;
  };
  const pick = (key, choices, fallback) => (choices.includes(p.get(key)) ? p.get(key) : fallback);
  return {
    image: p.get("image") || null,
    methods: p.has("method") ? [...new Set(methods)] : [...info.default_methods],
    cls: p.get("class") || "pred",
    layers: Array.from({ length: nRuns }, (_, i) => layers[i] || ""),
    opacity: num("opacity", 0.55, 0, 1),
    filters: {
      run: Math.trunc(num("run", 0, 0, nRuns - 1)),
      fclass: p.get("fclass") || "",
      outcome: pick("outcome", ["all", "correct", "misclassified"], "all"),
      min_conf: num("min_conf", 0, 0, 1),
      max_conf: num("max_conf", 1, 0, 1),
      sort: pick("sort", ["index", "confidence", "loss"], "index"),
      order: pick("order", ["asc", "desc"], "asc"),
      offset: Math.trunc(num("offset", 0, 0, 1e9)),
    },
  };
}

export function stateQuery(state) {
  const p = new URLSearchParams();
  if (state.image) p.set("image", state.image);
  state.methods.forEach((m) => p.append("method", m));
  if (state.cls !== "pred") p.set("class", state.cls);
  if (state.layers.some((l) => l)) state.layers.forEach((l) => p.append("layer", l));
  if (state.opacity !== 0.55) p.set("opacity", String(state.opacity));
  for (const [key, value] of Object.entries(state.filters)) {
    if (value !== FILTER_DEFAULTS[key]) p.set(key, String(value));
  }
  return p.toString();
}

export function writeURL(state, push = false) {
  const q = stateQuery(state);
  const target = q ? `?${q}` : location.pathname;
  if (target === location.search || (!q && !location.search)) return;
  if (push) history.pushState(null, "", target);
  else history.replaceState(null, "", target);
}
