// The runs dashboard: /api/runs as a sortable table; polled while any run is training.
"use strict";
let rows = [], sortKey = "name", ascending = true;

function pct(v) { return typeof v === "number" ? (100 * v).toFixed(2) + "%" : "-"; }

function progressText(p) {
  if (!p) return "";
  const logs = Object.entries(p.logs || {}).map(([k, v]) => `${k} ${v.toFixed(4)}`).join(", ");
  return `epoch ${p.epoch}/${p.epochs}, step ${p.step}/${p.steps ?? "?"}` + (logs ? `: ${logs}` : "");
}

function render() {
  const sorted = [...rows].sort((a, b) => {
    const x = a[sortKey], y = b[sortKey];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (ascending ? 1 : -1);
  });
  const body = document.querySelector("#runs tbody");
  body.innerHTML = "";
  for (const r of sorted) {
    const tr = body.insertRow();
    tr.dataset.run = r.name;
    const link = document.createElement("a");
    link.href = `/run/${r.name.split("/").map(encodeURIComponent).join("/")}`;
    link.textContent = r.name;
    tr.insertCell().appendChild(link);
    for (const v of [r.status, r.data ?? "-", r.epochs ?? "-", pct(r.best_val_accuracy), pct(r.val_accuracy)])
      tr.insertCell().textContent = v;
    const prog = tr.insertCell(); prog.className = "progress"; prog.textContent = progressText(r.progress);
    const curves = tr.insertCell();
    for (const c of r.curves) {
      const a = document.createElement("a");
      a.href = c; a.textContent = c.split("/").pop().replace(".png", "") + " ";
      curves.appendChild(a);
    }
  }
}

async function refresh() {
  try {
    const res = await fetch("/api/runs");
    const body = await res.json();
    rows = body.runs;
    render();
    const list = document.getElementById("reports");
    list.innerHTML = "";
    for (const rep of body.reports) {
      const li = document.createElement("li");
      li.innerHTML = `<a></a>`; li.firstChild.href = rep.url; li.firstChild.textContent = rep.name;
      list.appendChild(li);
    }
    if (!body.reports.length) list.innerHTML = "<li>No experiment reports yet.</li>";
    document.getElementById("error").textContent = "";
    document.body.dataset.ready = "1";
    if (rows.some(r => r.status === "running")) setTimeout(refresh, 2000);
  } catch (err) {
    document.getElementById("error").textContent = `Cannot read the runs: ${err}`;
    setTimeout(refresh, 5000);
  }
}

document.querySelectorAll("th.sortable").forEach(th => th.addEventListener("click", () => {
  ascending = sortKey === th.dataset.key ? !ascending : true;
  sortKey = th.dataset.key;
  render();
}));
refresh();
