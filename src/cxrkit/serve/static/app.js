// cxrkit web page: upload a film to /v1/predict and show probabilities, CAM and warnings.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("cxr-token") || "";
let classes = [];

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function show(el, on) {
  el.hidden = !on;
}

function setError(msg) {
  $("error").textContent = msg || "";
  show($("error"), Boolean(msg));
}

async function loadModel() {
  const res = await fetch("/v1/model", { headers: headers() });
  if (res.status === 401) {
    show($("token-row"), true);
    $("model-info").textContent = "token needed";
    return;
  }
  if (!res.ok) {
    setError("cannot load the model card (HTTP " + res.status + ")");
    return;
  }
  show($("token-row"), false);
  const card = await res.json();
  classes = card.class_names || [];
  const auc = card.metrics && card.metrics.test && card.metrics.test.auc;
  $("model-info").textContent =
    card.architecture + " · " + card.task + " · classes: " + classes.join(", ") +
    " · runtime: " + card.runtime + (typeof auc === "number" ? " · test AUC " + auc.toFixed(3) : "");
}

async function predict(file) {
  setError("");
  $("status").textContent = "predicting " + file.name + "…";
  $("result").dataset.state = "busy";
  const form = new FormData();
  form.append("file", file, file.name);
  let res;
  try {
    res = await fetch("/v1/predict?cam=true&preview=true", {
      method: "POST", body: form, headers: headers(),
    });
  } catch (err) {
    $("status").textContent = "";
    setError("network error: " + err);
    $("result").dataset.state = "error";
    return;
  }
  const body = await res.json().catch(() => ({ detail: "HTTP " + res.status }));
  $("status").textContent = "";
  if (!res.ok) {
    if (res.status === 401) show($("token-row"), true);
    setError(body.detail || "HTTP " + res.status);
    $("result").dataset.state = "error";
    return;
  }
  render(body);
}

function render(r) {
  show($("result"), true);
  $("label").textContent = r.label || "(none)";
  $("file-info").textContent =
    r.filename + " · " + r.format.toUpperCase() + " · " + r.original_size.join("×") + " px";
  if (r.preview_png) $("film").src = "data:image/png;base64," + r.preview_png;
  renderBars(r);
  renderCam(r);
  renderWarnings(r);
  const notes = $("notes");
  notes.replaceChildren();
  for (const [what, why] of Object.entries(r.unavailable || {})) {
    const li = document.createElement("li");
    li.textContent = what + ": " + why;
    notes.appendChild(li);
  }
  $("result").dataset.state = "done";
}

function renderBars(r) {
  const bars = $("bars");
  bars.replaceChildren();
  const names = classes.length ? classes : Object.keys(r.probabilities);
  const top = names.reduce((a, b) => (r.probabilities[b] > r.probabilities[a] ? b : a), names[0]);
  for (const name of names) {
    const p = r.probabilities[name];
    const row = document.createElement("div");
    row.className = "bar" + (name === top ? " top" : "");
    row.dataset.class = name;
    row.dataset.prob = String(p);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (p * 100).toFixed(2) + "%";
    track.appendChild(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = (p * 100).toFixed(1) + "%";
    row.append(label, track, value);
    bars.appendChild(row);
  }
}

function renderCam(r) {
  const cam = $("cam");
  if (r.cam) {
    cam.src = "data:image/png;base64," + r.cam.heatmap_png;
    $("cam-info").textContent = "Grad-CAM for class '" + r.cam.class + "'";
    show(cam, true);
    show($("cam-controls"), true);
    show($("cam-missing"), false);
    applyOpacity();
  } else {
    show(cam, false);
    show($("cam-controls"), false);
    $("cam-missing").textContent = "No CAM: " + ((r.unavailable || {}).cam || "unavailable");
    show($("cam-missing"), true);
  }
}

function renderWarnings(r) {
  const box = $("warnings");
  box.replaceChildren();
  const add = (cls, text) => {
    const div = document.createElement("div");
    div.className = "warning " + cls;
    div.textContent = text;
    box.appendChild(div);
  };
  // The server's warnings already say why (guard reason, inverted polarity).
  for (const w of r.warnings || []) {
    const notCxr = Boolean(r.not_cxr && r.not_cxr.flag && w === r.not_cxr.reason);
    add(notCxr ? "bad not-cxr" : "polarity", (notCxr ? "Not a chest X-ray? " : "Check: ") + w);
  }
}

function applyOpacity() {
  const v = Number($("opacity").value);
  $("cam").style.opacity = String(v / 100);
  $("opacity-value").textContent = v + "%";
}

function setup() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => {
    if (e.target.files.length) predict(e.target.files[0]);
  });
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) predict(e.dataTransfer.files[0]);
  });
  $("opacity").addEventListener("input", applyOpacity);
  $("token-save").addEventListener("click", () => {
    token = $("token").value.trim();
    sessionStorage.setItem("cxr-token", token);
    loadModel();
  });
  loadModel();
}

setup();
