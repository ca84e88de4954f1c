// State shared by the page's modes, the calls to the server, and drawing the stage.
// Coordinates are always the media's own pixels; the canvas has the media's size and CSS scales it.

export const state = {
  sid: null, info: null, media: null, mode: null,
  objects: [], active: null,
  prompts: new Map(),       // `${frame}:${obj}` -> {points: [[x, y, label]], box: [x0, y0, x1, y1] | null}
  history: [],              // undo: {frame, obj, before}
  frame: 0,
  base: null,               // ImageBitmap of the image or the current frame
  layers: [],               // ImageBitmaps drawn over it (masks, overlays)
  drag: null,               // {x0, y0, x1, y1} while a box is dragged
  scores: {},               // video: frame -> {obj: object score logit}
  running: false,
};
// Click -> mask shown, per click: {kind, total_ms, server_ms}; read by the latency benchmark.
window.studioTimings = [];

export const $ = (id) => document.getElementById(id);
export const stage = () => $("stage");

export async function api(path, options = {}) {
  const response = await fetch(`/api/s/${state.sid}${path}`, options);
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { text = (await response.json()).error || text; } catch (_) { /* not JSON */ }
    throw new Error(text);
  }
  return response;
}

export async function sendJson(path, method, body) {
  const response = await api(path, {method, headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  return response.json();
}

export function showMessage(text) {
  const element = $("message");
  element.textContent = text;
  element.hidden = !text;
}

export function setStatus(text) { $("status").textContent = text; }

export function color(obj, alpha = 1) {
  const [r, g, b] = state.info.colors[(obj - 1) % state.info.colors.length];
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

export async function bitmapFrom(base64OrBlob) {
  const blob = typeof base64OrBlob === "string"
    ? new Blob([Uint8Array.from(atob(base64OrBlob), (c) => c.charCodeAt(0))], {type: "image/png"})
    : base64OrBlob;
  return createImageBitmap(blob);
}

export const key = (frame, obj) => `${frame}:${obj}`;

export function promptsOf(frame, obj) {
  return state.prompts.get(key(frame, obj)) || {points: [], box: null};
}

export function objectHasPrompts(obj) {
  for (const [k, p] of state.prompts) {
    if (k.endsWith(`:${obj}`) && (p.points.length || p.box)) return true;
  }
  return false;
}

export function draw() {
  const canvas = stage();
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (state.base) context.drawImage(state.base, 0, 0);
  for (const layer of state.layers) context.drawImage(layer, 0, 0);
  const radius = Math.max(4, canvas.width / 160);
  for (const obj of state.objects) {
    const p = promptsOf(state.frame, obj);
    context.lineWidth = Math.max(2, radius / 2);
    if (p.box) {
      context.strokeStyle = color(obj);
      context.strokeRect(p.box[0], p.box[1], p.box[2] - p.box[0], p.box[3] - p.box[1]);
    }
    for (const [x, y, label] of p.points) {
      context.beginPath();
      context.arc(x, y, radius, 0, 2 * Math.PI);
      context.fillStyle = label ? "#28dc3c" : "#eb2828";
      context.fill();
      context.strokeStyle = obj === state.active ? "#fff" : color(obj);
      context.stroke();
    }
  }
  if (state.drag) {
    const d = state.drag;
    context.setLineDash([6, 4]);
    context.strokeStyle = color(state.active);
    context.strokeRect(d.x0, d.y0, d.x1 - d.x0, d.y1 - d.y0);
    context.setLineDash([]);
  }
}

export function renderObjects() {
  const list = $("objects");
  list.replaceChildren();
  const frameScores = state.scores[state.frame] || {};
  for (const obj of state.objects) {
    const item = document.createElement("li");
    item.dataset.obj = obj;
    item.className = obj === state.active ? "active" : "";
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = color(obj);
    const name = document.createElement("span");
    name.textContent = `object ${obj}`;
    const score = document.createElement("span");
    score.className = "score";
    if (frameScores[obj] !== undefined) {
      score.textContent = `score ${frameScores[obj].toFixed(1)}`;
      if (frameScores[obj] <= 0) score.classList.add("low");  // judged absent: lost or drifted
    }
    item.append(swatch, name, score);
    item.addEventListener("click", () => { state.active = obj; renderObjects(); draw(); });
    list.append(item);
  }
}

export function addObject() {
  const obj = state.objects.length ? Math.max(...state.objects) + 1 : 1;
  state.objects.push(obj);
  state.active = obj;
  renderObjects();
  return obj;
}

export function setDownloads(links) {
  const area = $("downloads");
  area.replaceChildren();
  for (const [label, path] of links) {
    const link = document.createElement("a");
    link.textContent = label;
    link.href = `/api/s/${state.sid}${path}`;
    link.setAttribute("download", "");
    link.dataset.download = path;
    area.append(link);
  }
}

export async function nextPaint() {
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
}
