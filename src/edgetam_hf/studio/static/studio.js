// The page: a session with the server, opening media, mouse and keyboard input; the modes
// (image.js, video.js) talk to the server about prompts and results.
import {$, addObject, api, draw, nextPaint, promptsOf, renderObjects, setStatus, showMessage, stage, state} from "./core.js";
import {imageMode} from "./image.js";
import {videoMode} from "./video.js";

const DRAG_PIXELS = 5;  // on screen: a press that moves less is a click, more is a box

async function start() {
  state.info = await (await fetch("/api/info")).json();
  $("models").textContent = state.info.models;
  $("models").dataset.bundled = state.info.bundled;
  const response = await fetch("/api/sessions", {method: "POST"});
  const body = await response.json();
  if (!response.ok) throw new Error(body.error);
  state.sid = body.id;
  addEventListener("pagehide", () => navigator.sendBeacon(`/api/s/${state.sid}/close`));
  document.body.dataset.ready = "true";
}

async function openSource(body) {
  showMessage("");
  setStatus("opening…");
  const response = await api("/open", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const media = await response.json();
  Object.assign(state, {media, objects: [], active: null, prompts: new Map(), history: [], frame: 0, layers: [], scores: {}, base: null});
  state.mode = media.kind === "image" ? imageMode : videoMode;
  stage().width = media.width;
  stage().height = media.height;
  addObject();
  await state.mode.open(media);
  $("media-name").textContent = `${media.name}: ${media.width}x${media.height}` + (media.kind === "video" ? `, ${media.num_frames} frames` : "");
  setStatus(media.kind === "image" ? "image encoded: click an object" : "click an object on any frame, then track it");
  document.body.dataset.media = media.kind;
  draw();
}

async function upload(file, query) {
  await api(`/upload?name=${encodeURIComponent(file.name)}${query}`, {method: "POST", body: file});
}

function guarded(action) {
  return (...args) => action(...args).catch((error) => { showMessage(error.message); setStatus(""); });
}

$("sample-image").addEventListener("click", guarded(() => openSource({source: "sample-image"})));
$("sample-clip").addEventListener("click", guarded(() => openSource({source: "sample-clip"})));
$("open-file").addEventListener("change", guarded(async (event) => {
  const [file] = event.target.files;
  event.target.value = "";
  if (!file) return;
  setStatus(`uploading ${file.name}…`);
  await upload(file, "");
  await openSource({source: "upload", name: file.name});
}));
$("open-folder").addEventListener("change", guarded(async (event) => {
  const files = [...event.target.files].filter((file) => /\.(jpe?g|png)$/i.test(file.name));
  event.target.value = "";
  if (!files.length) throw new Error("the folder holds no JPEG or PNG frames");
  for (const [index, file] of files.entries()) {
    setStatus(`uploading frame ${index + 1} / ${files.length}…`);
    await upload(file, `&frames=1${index === 0 ? "&reset=1" : ""}`);
  }
  await openSource({source: "frames"});
}));

// ------------------------------------------------------------------ editing prompts

// Applies `change` to the active object's prompts on the current frame and sends them; the
// mask is drawn when the answer comes, and the time from the input to that is recorded.
async function edit(change, startedAt = performance.now(), record = true) {
  if (!state.media) return;
  if (state.running) throw new Error("a propagation is running: wait for it or cancel it (Esc) first");
  if (state.active === null) addObject();
  const frame = state.frame, obj = state.active;
  const before = structuredClone(promptsOf(frame, obj));
  state.prompts.set(`${frame}:${obj}`, change(structuredClone(before)));
  if (record) state.history.push({frame, obj, before});
  draw();
  try {
    const serverMs = await state.mode.send(frame, obj);
    draw();
    await nextPaint();
    window.studioTimings.push({kind: state.media.kind, total_ms: performance.now() - startedAt, server_ms: serverMs});
    setStatus(`mask shown ${(performance.now() - startedAt).toFixed(0)} ms after the input (server ${serverMs.toFixed(0)} ms)`);
  } catch (error) {
    state.prompts.set(`${frame}:${obj}`, before);
    if (record) state.history.pop();
    draw();
    throw error;
  }
}

async function undo() {
  const last = state.history.pop();
  if (!last) return;
  if (state.media.kind === "video" && last.frame !== state.frame) await videoMode.show(last.frame);
  state.active = last.obj;
  renderObjects();
  await edit(() => last.before, performance.now(), false);
}

async function removeActive() {
  const obj = state.active;
  if (obj === null || state.running) return;
  await state.mode.remove(obj);
  for (const k of [...state.prompts.keys()]) if (k.endsWith(`:${obj}`)) state.prompts.delete(k);
  state.history = state.history.filter((entry) => entry.obj !== obj);
  state.objects = state.objects.filter((o) => o !== obj);
  state.active = state.objects.length ? state.objects[state.objects.length - 1] : null;
  renderObjects();
  state.mode.activeChanged();
  if (state.media.kind === "video") await videoMode.show(state.frame); else draw();
}

function toImage(event) {
  const rect = stage().getBoundingClientRect();
  const x = ((event.clientX - rect.left) / rect.width) * stage().width;
  const y = ((event.clientY - rect.top) / rect.height) * stage().height;
  return [Math.min(Math.max(x, 0), stage().width - 1), Math.min(Math.max(y, 0), stage().height - 1)];
}

const canvas = stage();
canvas.addEventListener("contextmenu", (event) => event.preventDefault());
canvas.addEventListener("mousedown", (event) => {
  if (!state.media) return;
  const [x, y] = toImage(event);
  state.drag = {x0: x, y0: y, x1: x, y1: y, screen: [event.clientX, event.clientY], negative: event.button === 2 || event.shiftKey, moved: false};
});
addEventListener("mousemove", (event) => {
  const drag = state.drag;
  if (!drag) return;
  [drag.x1, drag.y1] = toImage(event);
  drag.moved ||= Math.hypot(event.clientX - drag.screen[0], event.clientY - drag.screen[1]) > DRAG_PIXELS;
  if (drag.moved) draw();
});
addEventListener("mouseup", (event) => {
  const drag = state.drag;
  if (!drag) return;
  const startedAt = performance.now();
  state.drag = null;
  const round = (v) => Math.round(v * 10) / 10;
  if (drag.moved) {
    const box = [Math.min(drag.x0, drag.x1), Math.min(drag.y0, drag.y1), Math.max(drag.x0, drag.x1), Math.max(drag.y0, drag.y1)].map(round);
    guarded(() => edit((p) => ({...p, box}), startedAt))();
  } else {
    const point = [round(drag.x0), round(drag.y0), drag.negative ? 0 : 1];
    guarded(() => edit((p) => ({...p, points: [...p.points, point]}), startedAt))();
  }
});

$("new-object").addEventListener("click", () => { addObject(); state.mode?.activeChanged(); draw(); });
$("undo").addEventListener("click", guarded(undo));
$("clear").addEventListener("click", guarded(() => edit(() => ({points: [], box: null}))));
$("remove-object").addEventListener("click", guarded(removeActive));

function cycleObject(step) {
  if (!state.objects.length) return;
  const index = state.objects.indexOf(state.active);
  state.active = state.objects[(index + step + state.objects.length) % state.objects.length];
  renderObjects();
  state.mode.activeChanged();
  draw();
}

addEventListener("keydown", guarded(async (event) => {
  if (!state.media || event.target.tagName === "INPUT" && event.target.type === "file") return;
  // The frame slider moves itself with the arrows and Home / End.
  if (event.target.type === "range" && ["ArrowLeft", "ArrowRight", "Home", "End"].includes(event.key)) return;
  const shortcuts = {
    n: () => { addObject(); state.mode.activeChanged(); draw(); },
    "[": () => cycleObject(-1), "]": () => cycleObject(1),
    u: undo, c: () => edit(() => ({points: [], box: null})), Delete: removeActive,
  };
  let handled = true;
  if ((event.ctrlKey || event.metaKey) && event.key === "z") await undo();
  else if (shortcuts[event.key] && !event.ctrlKey && !event.metaKey) await shortcuts[event.key]();
  else handled = await state.mode.key(event);
  if (handled) event.preventDefault();
}));

start().catch((error) => showMessage(`the studio could not start a session: ${error.message}`));
