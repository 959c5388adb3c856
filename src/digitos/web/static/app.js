// digitos drawing page: pointer events on a canvas, predictions from /api/predict as you draw.
"use strict";

const TEXT = {
  en: {
    tagline: "Draw a digit or a number and watch the network read it.",
    clear: "Clear", upload: "Upload an image…", wide: "Wide pad", square: "Square pad",
    hint: "Draw with the mouse, a finger or a pen.",
    empty: "The pad is empty.", reading: "Reading…",
    seen: "What the model saw (28×28)", heat: "Pixels that pushed the reading",
    sure: "probability", unsure: "Unsure. It could also be", or: "or",
    orNot: "or not a digit", error: "Could not read it:",
    nodigit: "not a digit", nodigitStatus: "That does not look like a digit.", nadBar: "not a digit",
    digits: "digits, left to right", leastSure: "the bars: the least sure digit",
    collecting: "Saving is on: the drawings you mark here are kept, to teach the model your handwriting.",
    right: "Right", wrong: "Wrong, it was:", save: "Save", notdigitBtn: "Not a digit",
    saved: "Saved as", nothing: "Draw or upload something first.",
  },
  es: {
    tagline: "Dibuja un dígito o un número y mira cómo lo lee la red.",
    clear: "Borrar", upload: "Subir una imagen…", wide: "Lienzo ancho", square: "Lienzo cuadrado",
    hint: "Dibuja con el ratón, con el dedo o con un lápiz.",
    empty: "El lienzo está vacío.", reading: "Leyendo…",
    seen: "Lo que vio el modelo (28×28)", heat: "Píxeles que decidieron la lectura",
    sure: "de probabilidad", unsure: "No está seguro. También podría ser:", or: "o",
    orNot: "o no ser un dígito", error: "No se pudo leer:",
    nodigit: "no es un dígito", nodigitStatus: "Eso no parece un dígito.", nadBar: "no es dígito",
    digits: "dígitos, de izquierda a derecha", leastSure: "las barras: el dígito menos seguro",
    collecting: "Se guardan los dibujos que marques aquí, para enseñarle al modelo tu letra.",
    right: "Correcto", wrong: "Incorrecto, era:", save: "Guardar", notdigitBtn: "No es un dígito",
    saved: "Guardado como", nothing: "Primero dibuja o sube algo.",
  },
};

let lang = (navigator.language || "en").toLowerCase().startsWith("es") ? "es" : "en";
let last = null; // the last answer, re-shown when the language changes
let wide = false;

function t(key) { return TEXT[lang][key]; }

function setLanguage(code) {
  lang = code;
  document.documentElement.lang = code;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-lang]").forEach((b) => b.classList.toggle("active", b.dataset.lang === code));
  document.getElementById("shape").textContent = t(wide ? "square" : "wide");
  if (last) show(last);
}

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const boxes = document.getElementById("boxes");
let drawing = false, inked = false, busy = false, dirty = false;

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  boxes.getContext("2d").clearRect(0, 0, boxes.width, boxes.height);
  inked = false; last = null;
  document.getElementById("digit").textContent = "–";
  document.getElementById("confidence").textContent = "";
  document.body.classList.remove("unsure", "nodigit");
  setStatus(t("empty"));
  renderBars(null);
  document.getElementById("digits").innerHTML = "";
  for (const id of ["seen", "heat"]) {
    const c = document.getElementById(id).getContext("2d");
    c.clearRect(0, 0, 28, 28);
  }
}

// A square pad for one digit, a wide one (twice as wide) for a number.
function setShape(isWide) {
  wide = isWide;
  pad.width = boxes.width = isWide ? 560 : 280;
  document.body.classList.toggle("wide", isWide);
  document.getElementById("shape").textContent = t(isWide ? "square" : "wide");
  clearPad();
}

function point(e) {
  const r = pad.getBoundingClientRect();
  const border = 2; // the pad's CSS border, outside its drawing area
  return [(e.clientX - r.left - border) * pad.width / (r.width - 2 * border),
          (e.clientY - r.top - border) * pad.height / (r.height - 2 * border)];
}

let saved = false; // the drawing on the pad was just saved: the next stroke starts anew

pad.addEventListener("pointerdown", (e) => {
  if (saved) { saved = false; clearPad(); }
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
  e.preventDefault();
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
// Belt and braces for touch browsers that scroll before pointer events say otherwise.
pad.addEventListener("touchstart", (e) => e.preventDefault(), { passive: false });
pad.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });

// At most one request in flight; strokes made meanwhile are sent when it returns.
function requestPrediction() {
  if (!inked) return;
  if (busy) { dirty = true; return; }
  busy = true; dirty = false;
  document.body.dataset.state = "reading";
  send(JSON.stringify({ image: pad.toDataURL("image/png"), name: "canvas" }), "application/json", true)
    .finally(() => {
      busy = false;
      if (dirty) requestPrediction();
      else document.body.dataset.state = "idle"; // the reading shown is of the whole drawing
    });
}

let lastImage = null; // the data URL of what was read last: what a correction stores

async function send(body, contentType, fromPad) {
  const headers = contentType ? { "Content-Type": contentType } : {};
  try {
    const res = await fetch("/api/predict?explain=1", { method: "POST", body, headers });
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    data.fromPad = fromPad;
    last = data;
    lastImage = fromPad ? JSON.parse(body).image : await dataUrlOf(body.get("file"));
    document.getElementById("saved").textContent = "";
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

const pct = (p) => `${(100 * p).toFixed(1)}%`;

function show(data) {
  const many = data.digits.length > 1;
  document.body.classList.toggle("nodigit", data.not_a_digit);
  document.body.classList.toggle("unsure", !data.not_a_digit && data.unsure);
  document.getElementById("digit").textContent = data.not_a_digit ? t("nodigit") : data.number;
  // The headline's share is the one its bar shows: not a digit's own share, the digit's, or
  // for a number its least sure digit's (whose bars are shown).
  const shown = data.not_a_digit ? null : data.digits.reduce(
    (a, d) => (d.confidence < a.confidence ? d : a), data.digits[0]);
  const headline = data.not_a_digit ? data.not_a_digit_probability : shown.confidence;
  document.getElementById("confidence").textContent = `${pct(headline)} ${t("sure")}`;
  if (data.not_a_digit) {
    setStatus(t("nodigitStatus"));
  } else if (data.unsure && !many) {
    setStatus(alternatives(shown));
  } else {
    setStatus(many ? `${data.digits.length} ${t("digits")}; ${t("leastSure")}` : "");
  }
  if (data.not_a_digit) renderBars(data.probabilities, -1, data.not_a_digit_probability, true);
  else renderBars(shown.probabilities, shown.digit, shown.not_a_digit_probability, false);
  renderDigits(data.digits);
  drawBoxes(data.fromPad ? data.digits : []);
  paint("seen", data.preprocessed.map((v) => [v, v, v]));
  // Heat map: the 28x28 in grey, the saliency in red on top of it.
  paint("heat", data.saliency.map((s, i) => {
    const g = data.preprocessed[i] * 0.35;
    return [Math.min(255, g + 255 * s), g * (1 - s), g * (1 - s)];
  }));
}

// "Unsure. It could also be 2 (15.2%) or not a digit (35.6%)": the two likeliest other
// answers, never the reading itself.
function alternatives(d) {
  const others = d.probabilities.map((p, digit) => ({ digit, p }))
    .filter((o) => o.digit !== d.digit);
  if (d.not_a_digit_probability > 0) others.push({ digit: null, p: d.not_a_digit_probability });
  others.sort((a, b) => b.p - a.p);
  const [a, b] = others;
  const name = (o, first) => (o.digit === null ? (first ? t("nodigit") : t("orNot"))
                                                : `${first ? "" : t("or") + " "}${o.digit}`);
  return `${t("unsure")} ${name(a, true)} (${pct(a.p)}) ${name(b, false)} (${pct(b.p)})`;
}

// A box around each digit read, on a layer over the pad (the drawing itself is untouched).
function drawBoxes(digits) {
  const c = boxes.getContext("2d");
  c.clearRect(0, 0, boxes.width, boxes.height);
  c.lineWidth = 2; c.strokeStyle = "#1f9d55"; c.fillStyle = "#1f9d55";
  c.font = "bold 16px system-ui, sans-serif";
  for (const d of digits) {
    const [l, tp, r, b] = d.box;
    c.strokeRect(l - 3, tp - 3, r - l + 6, b - tp + 6);
    c.fillText(String(d.digit), l - 2, Math.max(14, tp - 6));
  }
  boxes.dataset.count = String(digits.length);
}

function renderDigits(digits) {
  const box = document.getElementById("digits");
  box.innerHTML = "";
  if (digits.length < 2) return;
  for (const d of digits) {
    const fig = document.createElement("figure");
    const cv = document.createElement("canvas");
    cv.width = cv.height = 28;
    const img = cv.getContext("2d").createImageData(28, 28);
    d.preprocessed.forEach((v, i) => { img.data.set([v, v, v, 255], 4 * i); });
    cv.getContext("2d").putImageData(img, 0, 0);
    const cap = document.createElement("figcaption");
    cap.textContent = `${d.digit} · ${pct(d.confidence)}`;
    fig.append(cv, cap);
    box.appendChild(fig);
  }
}

function paint(id, rgb) {
  const c = document.getElementById(id).getContext("2d");
  const img = c.createImageData(28, 28);
  rgb.forEach(([r, g, b], i) => { img.data.set([r, g, b, 255], 4 * i); });
  c.putImageData(img, 0, 0);
}

// One bar per digit and, for a model that can say so, one for "not a digit".
function renderBars(probs, top, notDigit, notDigitTop) {
  const box = document.getElementById("bars");
  box.innerHTML = "";
  const rows = [...Array(10).keys()].map((d) => [String(d), probs ? probs[d] : 0, d === top]);
  if (notDigit !== undefined && notDigit !== null) rows.push([t("nadBar"), notDigit, notDigitTop]);
  rows.forEach(([label, p, isTop], i) => {
    const row = document.createElement("div");
    row.className = "bar" + (probs && isTop ? " top" : "") + (i === 10 ? " nad" : "");
    row.dataset.digit = i === 10 ? "not a digit" : label;
    row.innerHTML = `<span>${label}</span><div class="track"><div class="fill" style="width:${(100 * p).toFixed(1)}%"></div></div><span class="pct">${(100 * p).toFixed(1)}%</span>`;
    box.appendChild(row);
  });
}

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("shape").addEventListener("click", () => setShape(!wide));
document.getElementById("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  setStatus(t("reading"));
  send(form, null, false);
  e.target.value = "";
});
document.querySelectorAll("[data-lang]").forEach((b) => b.addEventListener("click", () => setLanguage(b.dataset.lang)));

// Corrections: only when the server keeps them (digitos serve --collect).
function dataUrlOf(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

async function saveDrawing(label) {
  const out = document.getElementById("saved");
  if (!last || !lastImage) { out.textContent = t("nothing"); return; }
  try {
    const res = await fetch("/api/drawings", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ image: lastImage, label }),
    });
    const data = await res.json();
    if (!res.ok) throw new Error(data.error || res.statusText);
    out.textContent = `${t("saved")} “${data.label === "not a digit" ? t("nodigit") : data.label}” (#${data.id})`;
    out.dataset.id = data.id;
    saved = true;
  } catch (err) {
    out.textContent = `${t("error")} ${err.message}`;
  }
}

document.getElementById("right").addEventListener("click", () => {
  if (last) saveDrawing(last.not_a_digit ? "not a digit" : last.number);
  else saveDrawing("");
});
document.getElementById("save").addEventListener("click", () => {
  saveDrawing(document.getElementById("truth").value.trim());
});
document.getElementById("notdigit").addEventListener("click", () => saveDrawing("not a digit"));

fetch("/healthz").then((r) => r.json()).then((h) => {
  document.getElementById("feedback").hidden = !h.collect;
}).catch(() => {});

setLanguage(lang);
clearPad();
