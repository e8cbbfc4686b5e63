// xaikit explorer: reads the server's runs and methods, restores the view from the URL, and
// keeps the URL up to date as the view changes.
import { ApiError, get, upload } from "./api.js";
import { $, clear, el, showError } from "./dom.js";
import { Grid } from "./grid.js";
import { readState, writeURL } from "./state.js";
import { Viewer } from "./viewer.js";

let info;
let state;
let grid;
let viewer;

function update(patch, push = false) {
  const imageChanged = "image" in patch && patch.image !== state.image;
  state = { ...state, ...patch };
  writeURL(state, push);
  if ("filters" in patch) return;
  if ("opacity" in patch && Object.keys(patch).length === 1) return;
  viewer.render(state, { image: imageChanged });
}

function pick(ref) {
  showError($("upload-error"), "");
  grid.markSelected(ref);
  update({ image: ref }, true);
}

async function sendFile(file) {
  const box = $("upload-error");
  if (!file) return;
  if (file.size > info.max_upload_bytes) {
    showError(box, `${file.name} is ${(file.size / 1048576).toFixed(1)} MiB; the limit is ${(info.max_upload_bytes / 1048576).toFixed(1)} MiB`);
    return;
  }
  showError(box, "");
  $("drop").classList.add("loading");
  try {
    const answer = await upload(file);
    if (viewer.uploadPreview) URL.revokeObjectURL(viewer.uploadPreview);
    viewer.uploadPreview = URL.createObjectURL(file);
    viewer.uploadName = answer.name;
    pick(answer.image);
  } catch (err) {
    showError(box, err instanceof ApiError ? err.message : String(err));
    box.scrollIntoView({ block: "nearest" });
  } finally {
    $("drop").classList.remove("loading");
    $("file").value = "";
  }
}

function wireUploads() {
  $("file").addEventListener("change", () => sendFile($("file").files[0]));
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    document.body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (event.target === document.documentElement || event.clientX <= 0 || event.clientY <= 0) document.body.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) sendFile(file);
  });
}

function showRuns() {
  const list = clear($("runs"));
  for (const run of info.runs) {
    const accuracy = run.accuracy === null ? "" : ` · test accuracy ${(100 * run.accuracy).toFixed(2)}%`;
    list.append(el("li", {}, el("strong", { text: `${run.index}: ${run.name}` }),
      el("span", { class: "muted", text: ` ${run.model}, ${run.num_test.toLocaleString()} test images${accuracy} · ${run.device}` })));
  }
}

async function boot() {
  try {
    info = await get("/api/state");
  } catch (err) {
    showError($("fatal"), `cannot load the explorer: ${err.message}`);
    return;
  }
  showRuns();
  state = readState(location.search, info);
  grid = new Grid(info, pick, (filters) => update({ filters }));
  viewer = new Viewer(info, (patch, push) => update(patch, push));
  wireUploads();
  window.addEventListener("popstate", () => {
    const before = state.image;
    state = readState(location.search, info);
    grid.markSelected(state.image);
    grid.setFilters(state.filters);
    viewer.render(state, { image: state.image !== before });
  });
  grid.selected = state.image;
  grid.setFilters(state.filters);
  viewer.render(state, { image: true });
  document.body.dataset.ready = "1";
}

boot();
