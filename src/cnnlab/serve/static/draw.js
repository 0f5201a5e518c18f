// The draw page: a canvas (mouse, pen or finger through pointer events), live top-3
// probabilities from the server, optional feature maps, and an upload box.
"use strict";
const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const modelSelect = document.getElementById("model");
const errorBox = document.getElementById("error");
let drawing = false, dirty = false, inFlight = false, last = null;

function clearPad() {
  ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height);
  document.getElementById("top-class").textContent = "";
  document.getElementById("predictions").innerHTML = "";
  document.getElementById("maps").innerHTML = "";
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

pad.addEventListener("pointerdown", e => { drawing = true; last = point(e); pad.setPointerCapture(e.pointerId); stroke(e); });
pad.addEventListener("pointermove", e => { if (drawing) stroke(e); });
["pointerup", "pointercancel", "pointerleave"].forEach(t => pad.addEventListener(t, () => { drawing = false; predictDrawing(); }));

function stroke(e) {
  const p = point(e);
  ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
  last = p; dirty = true;
  predictDrawing();
}

// one request at a time; a drawing that changed meanwhile is sent when the answer comes
async function predictDrawing() {
  if (!dirty || inFlight || !modelSelect.value) return;
  dirty = false; inFlight = true;
  const image = pad.toDataURL("image/png");
  try {
    const body = await post({image: image, top: 3});
    if (body) showTop(body.predictions[0], document.getElementById("predictions"), true);
    if (document.getElementById("show-maps").checked) await showMaps(image);
  } finally {
    inFlight = false;
    if (dirty) predictDrawing();
  }
}

async function post(payload, form) {
  const url = `/v1/models/${encodeURIComponent(modelSelect.value)}/predict`;
  const init = form ? {method: "POST", body: form}
                    : {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(payload)};
  const res = await fetch(url, init);
  const body = await res.json().catch(() => ({error: `HTTP ${res.status}`}));
  if (!res.ok) { errorBox.textContent = body.error || `HTTP ${res.status}`; return null; }
  errorBox.textContent = "";
  return body;
}

function showTop(pred, table, big) {
  table.innerHTML = "";
  for (const t of pred.top) {
    const row = table.insertRow();
    row.className = "top-row";
    row.insertCell().textContent = t.class;
    const pct = (100 * t.probability).toFixed(1) + "%";
    row.insertCell().innerHTML = `<span class="bar" style="width:${(150 * t.probability).toFixed(0)}px"></span>`;
    row.insertCell().textContent = pct;
    row.dataset.probability = t.probability;
  }
  if (big) document.getElementById("top-class").textContent = pred.top[0].class;
}

async function showMaps(image) {
  const res = await fetch(`/v1/models/${encodeURIComponent(modelSelect.value)}/features`, {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({image: image})});
  const box = document.getElementById("maps");
  if (!res.ok) { box.textContent = "Feature maps are not available for this model."; return; }
  const body = await res.json();
  box.innerHTML = "";
  for (const layer of body.layers) {
    const h = document.createElement("h3");
    h.textContent = `${layer.name} ${JSON.stringify(layer.shape)}`;
    box.appendChild(h);
    for (const m of layer.maps) {
      const c = document.createElement("canvas");
      c.width = m[0].length; c.height = m.length;
      const img = c.getContext("2d").createImageData(c.width, c.height);
      m.flat().forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
      c.getContext("2d").putImageData(img, 0, 0);
      box.appendChild(c);
    }
  }
}

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("upload").addEventListener("change", async e => {
  const file = e.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  const out = document.getElementById("upload-result");
  out.innerHTML = "";
  const body = await post(null, form);
  if (!body) return;
  const table = document.createElement("table");
  table.id = "upload-predictions";
  out.appendChild(table);
  showTop(body.predictions[0], table, false);
});

async function loadModels() {
  const res = await fetch("/v1/models");
  const body = await res.json();
  for (const m of body.models) {
    const o = document.createElement("option");
    o.value = m.name; o.textContent = `${m.name} (${m.version})`;
    modelSelect.appendChild(o);
  }
  if (!body.models.length) errorBox.textContent = "No model is served: start `cnnlab serve RUN`.";
  document.body.dataset.ready = "1";
}
clearPad();
loadModels();
