// Video mode: frames fetched as they are shown; prompts on any frame; propagation read as lines
// of JSON while the server computes them, each frame drawn as it arrives, with progress and fps.
import {$, api, bitmapFrom, color, draw, objectHasPrompts, promptsOf, renderObjects, sendJson, setDownloads, setStatus, showMessage, state} from "./core.js";

const FRAME_CACHE = 8, OVERLAY_CACHE = 64;
const frames = new Map(), overlays = new Map();  // frame -> ImageBitmap, the most recent kept
const onServer = new Set();                      // objects the server's session holds
let shownToken = 0;

function remember(cache, limit, frame, bitmap) {
  cache.delete(frame);
  cache.set(frame, bitmap);
  while (cache.size > limit) cache.delete(cache.keys().next().value);
}

export const videoMode = {
  kind: "video",

  async open(media) {
    frames.clear();
    overlays.clear();
    onServer.clear();
    $("image-tools").hidden = true;
    $("video-tools").hidden = false;
    $("video-controls").hidden = false;
    $("frame-slider").max = media.num_frames - 1;
    setDownloads([["DAVIS masks (zip of indexed PNGs)", "/video/davis.zip"], ["COCO RLE JSON", "/video/coco.json"], ["Overlay video", "/video/overlay"]]);
    await this.show(0);
  },

  async show(frame) {
    const token = ++shownToken;
    state.frame = frame;
    $("frame-slider").value = frame;
    $("frame-label").textContent = `frame ${frame} / ${state.media.num_frames - 1}`;
    let base = frames.get(frame);
    if (!base) {
      base = await bitmapFrom(await (await api(`/video/frames/${frame}`)).blob());
      remember(frames, FRAME_CACHE, frame, base);
    }
    let overlay = overlays.get(frame);
    if (!overlay && state.scores[frame]) {
      const response = await api(`/video/overlays/${frame}`);
      if (response.status === 200) {
        overlay = await bitmapFrom(await response.blob());
        remember(overlays, OVERLAY_CACHE, frame, overlay);
      }
    }
    if (token !== shownToken) return;  // a later frame was asked for meanwhile
    state.base = base;
    state.layers = overlay ? [overlay] : [];
    renderObjects();
    drawScores();
    draw();
  },

  async send(frame, obj) {
    if (!objectHasPrompts(obj)) {  // its last prompt was undone or cleared: the object goes
      if (onServer.has(obj)) await removeOnServer(obj);
      return 0;
    }
    const p = promptsOf(frame, obj);
    const result = await sendJson("/video/prompts", "PUT", {frame, obj, points: p.points, box: p.box});
    onServer.add(obj);
    await takeResult(result);
    return result.server_ms;
  },

  async remove(obj) {
    if (onServer.has(obj)) await removeOnServer(obj);
  },

  async key(event) {
    const actions = {
      ArrowLeft: () => this.show(Math.max(0, state.frame - 1)),
      ArrowRight: () => this.show(Math.min(state.media.num_frames - 1, state.frame + 1)),
      Home: () => this.show(0),
      End: () => this.show(state.media.num_frames - 1),
      f: () => propagate("forward"), b: () => propagate("backward"), a: () => propagate("both"),
      Escape: () => cancel(),
    };
    if (!actions[event.key]) return false;
    await actions[event.key]();
    return true;
  },

  activeChanged() {},
};

async function removeOnServer(obj) {
  const {changed_frames: changed} = await sendJson(`/video/objects/${obj}`, "DELETE", {});
  onServer.delete(obj);
  for (const frame of changed) overlays.delete(frame);
  for (const frameScores of Object.values(state.scores)) delete frameScores[obj];
  await videoMode.show(state.frame);
}

async function takeResult(result) {
  const bitmap = await bitmapFrom(result.overlay);
  remember(overlays, OVERLAY_CACHE, result.frame, bitmap);
  state.scores[result.frame] = result.scores;
  if (result.frame === state.frame) {
    state.layers = [bitmap];
    renderObjects();
  }
  drawScores();
}

function setRunning(running) {
  state.running = running;
  for (const id of ["propagate-forward", "propagate-backward", "propagate-both"]) $(id).disabled = running;
  $("cancel").disabled = !running;
}

export async function propagate(direction) {
  if (state.running) return;
  showMessage("");
  setRunning(true);
  $("progress").value = 0;
  $("progress-label").textContent = `tracking ${direction}…`;
  try {
    const response = await api("/video/propagate", {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({direction, start: state.frame}),
    });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      pending += decoder.decode(value, {stream: true});
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const event = JSON.parse(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        await takeEvent(event);
      }
    }
  } catch (error) {
    showMessage(error.message);
  } finally {
    setRunning(false);
  }
}

async function takeEvent(event) {
  if (event.type === "frame") {
    await takeResult(event);
    $("progress").max = event.total;
    $("progress").value = event.done;
    $("progress-label").textContent = `${event.done} / ${event.total} frames, ${event.fps.toFixed(1)} fps`;
    await videoMode.show(event.frame);
    return;
  }
  const what = event.cancelled ? "cancelled after" : "tracked";
  $("progress-label").textContent = `${what} ${event.done} / ${event.total} frames`;
  $("progress-label").dataset.state = event.error ? "error" : event.cancelled ? "cancelled" : "done";
  if (event.error) showMessage(event.error);
  setStatus(`${what} ${event.done} frames`);
}

export async function cancel() {
  if (state.running) await api("/video/cancel", {method: "POST"});
}

// Each object's score per frame: above the middle line the object is judged present; a line
// that sinks shows where tracking lost or drifted off it.
function drawScores() {
  const canvas = $("score-strip");
  const context = canvas.getContext("2d");
  const {width, height} = canvas;
  const count = state.media.num_frames;
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#ccc";
  context.beginPath();
  context.moveTo(0, height / 2);
  context.lineTo(width, height / 2);
  context.stroke();
  for (const obj of state.objects) {
    context.fillStyle = color(obj);
    for (const [frame, frameScores] of Object.entries(state.scores)) {
      if (frameScores[obj] === undefined) continue;
      const clamped = Math.max(-20, Math.min(20, frameScores[obj]));
      const x = ((Number(frame) + 0.5) / count) * width;
      context.fillRect(x - 1.5, height / 2 - (clamped / 20) * (height / 2 - 3) - 1.5, 3, 3);
    }
  }
  context.fillStyle = "#000";
  context.fillRect(((state.frame + 0.5) / count) * width - 0.5, 0, 1, height);
}

$("frame-slider").addEventListener("input", (event) => videoMode.show(Number(event.target.value)).catch((e) => showMessage(e.message)));
$("propagate-forward").addEventListener("click", () => propagate("forward"));
$("propagate-backward").addEventListener("click", () => propagate("backward"));
$("propagate-both").addEventListener("click", () => propagate("both"));
$("cancel").addEventListener("click", () => cancel());
