// digitos drawing page: pointer events on a canvas, predictions from /api/predict as you draw.
"use strict";

const TEXT = {
  en: {
    tagline: "Draw a digit and watch the network read it.",
    clear: "Clear", upload: "Upload an image…",
    hint: "Draw with the mouse, a finger or a pen.",
    empty: "The pad is empty.", reading: "Reading…",
    seen: "What the model saw (28×28)", heat: "Pixels that pushed the reading",
    sure: "probability", unsure: "unsure — could be", error: "Could not read it:",
  },
  es: {
    tagline: "Dibujá un dígito y mirá cómo lo lee la red.",
    clear: "Borrar", upload: "Subir una imagen…",
    hint: "Dibujá con el mouse, el dedo o un lápiz.",
    empty: "El lienzo está vacío.", reading: "Leyendo…",
    seen: "Lo que vio el modelo (28×28)", heat: "Píxeles que decidieron la lectura",
    sure: "probabilidad", unsure: "no está seguro — podría ser", error: "No se pudo leer:",
  },
};

let lang = (navigator.language || "en").toLowerCase().startsWith("es") ? "es" : "en";
let last = null; // the last answer, re-shown when the language changes

function t(key) { return TEXT[lang][key]; }

function setLanguage(code) {
  lang = code;
  document.documentElement.lang = code;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-lang]").forEach((b) => b.classList.toggle("active", b.dataset.lang === code));
  if (last) show(last);
}

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
let drawing = false, inked = false, busy = false, dirty = false;

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  inked = false; last = null;
  document.getElementById("digit").textContent = "–";
  document.getElementById("confidence").textContent = "";
  document.querySelector(".result").classList.remove("unsure");
  setStatus(t("empty"));
  renderBars(null);
  for (const id of ["seen", "heat"]) {
    const c = document.getElementById(id).getContext("2d");
    c.clearRect(0, 0, 28, 28);
  }
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height];
}

pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  pad.setPointerCapture(e.pointerId);
  const [x, y] = point(e);
  ctx.lineWidth = 18; ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#000";
  ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 0.01, y); ctx.stroke();
  inked = true;
  e.preventDefault();
});
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = point(e);
  ctx.lineTo(x, y); ctx.stroke();
  requestPrediction();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    requestPrediction();
  });
}

// At most one request in flight; strokes made meanwhile are sent when it returns.
function requestPrediction() {
  if (!inked) return;
  if (busy) { dirty = true; return; }
  busy = true; dirty = false;
  document.body.dataset.state = "reading";
  send(JSON.stringify({ image: pad.toDataURL("image/png"), name: "canvas" }), "application/json")
    .finally(() => {
      busy = false;
      if (dirty) requestPrediction();
      else document.body.dataset.state = "idle"; // the reading shown is of the whole drawing
    });
}

async function send(body, contentType) {
  const headers = contentType ? { "Content-Type": contentType } : {};
  try {
    const res = await fetch("/api/predict", { method: "POST", body, headers });
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    last = data;
    show(data);
  } catch (err) {
    last = null;
    setStatus(`${t("error")} ${err.message}`, true);
  }
}

function setStatus(text, isError = false) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function show(data) {
  document.getElementById("digit").textContent = data.digit;
  const pct = (p) => `${(100 * p).toFixed(1)}%`;
  document.getElementById("confidence").textContent = `${pct(data.confidence)} ${t("sure")}`;
  document.querySelector(".result").classList.toggle("unsure", data.unsure);
  if (data.unsure) {
    const others = data.top.slice(1).map((o) => `${o.digit} (${pct(o.probability)})`).join(", ");
    setStatus(`${t("unsure")} ${others}`);
  } else {
    setStatus("");
  }
  renderBars(data.probabilities, Number(data.digit));
  paint("seen", data.preprocessed.map((v) => [v, v, v]));
  // Heat map: the 28x28 in grey, the saliency in red on top of it.
  paint("heat", data.saliency.map((s, i) => {
    const g = data.preprocessed[i] * 0.35;
    return [Math.min(255, g + 255 * s), g * (1 - s), g * (1 - s)];
  }));
}

function paint(id, rgb) {
  const c = document.getElementById(id).getContext("2d");
  const img = c.createImageData(28, 28);
  rgb.forEach(([r, g, b], i) => { img.data.set([r, g, b, 255], 4 * i); });
  c.putImageData(img, 0, 0);
}

function renderBars(probs, top) {
  const box = document.getElementById("bars");
  box.innerHTML = "";
  for (let d = 0; d < 10; d++) {
    const p = probs ? probs[d] : 0;
    const row = document.createElement("div");
    row.className = "bar" + (probs && d === top ? " top" : "");
    row.dataset.digit = String(d);
    row.innerHTML = `<span>${d}</span><div class="track"><div class="fill" style="width:${(100 * p).toFixed(1)}%"></div></div><span class="pct">${(100 * p).toFixed(1)}%</span>`;
    box.appendChild(row);
  }
}

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  setStatus(t("reading"));
  send(form, null);
  e.target.value = "";
});
document.querySelectorAll("[data-lang]").forEach((b) => b.addEventListener("click", () => setLanguage(b.dataset.lang)));

setLanguage(lang);
clearPad();
