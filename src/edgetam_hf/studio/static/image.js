// Image mode: the server encoded the image once; each change of an object's prompts asks for its
// candidates (three, or one), drawn at once; the chosen one is downloaded.
import {$, api, bitmapFrom, draw, promptsOf, sendJson, setDownloads, state} from "./core.js";

const masks = new Map();  // obj -> {candidates: [ImageBitmap], iou: [number], chosen}

export const imageMode = {
  kind: "image",

  async open(media) {
    masks.clear();
    $("image-tools").hidden = false;
    $("video-tools").hidden = true;
    $("video-controls").hidden = true;
    setDownloads([["PNG masks (zip)", "/image/masks.zip"], ["COCO RLE JSON", "/image/coco.json"]]);
    state.base = await bitmapFrom(await (await api("/image/source")).blob());
    relayer();
    renderCandidates();
  },

  // Sends the object's prompts; returns the server's time in ms.
  async send(frame, obj) {
    const p = promptsOf(frame, obj);
    if (!p.points.length && !p.box) {
      await api(`/image/objects/${obj}`, {method: "DELETE"});
      masks.delete(obj);
      relayer();
      renderCandidates();
      return 0;
    }
    const result = await sendJson(`/image/objects/${obj}`, "PUT", {points: p.points, box: p.box, multimask: $("multimask").checked});
    const candidates = await Promise.all(result.candidates.map(bitmapFrom));
    masks.set(obj, {candidates, iou: result.iou_scores, chosen: result.chosen});
    relayer();
    renderCandidates();
    return result.server_ms;
  },

  async remove(obj) {
    await api(`/image/objects/${obj}`, {method: "DELETE"});
    masks.delete(obj);
    relayer();
    renderCandidates();
  },

  async key(event) {
    if (event.key === "m") {
      $("multimask").checked = !$("multimask").checked;
      await resendActive();
      return true;
    }
    if (["1", "2", "3"].includes(event.key)) {
      await choose(Number(event.key) - 1);
      return true;
    }
    return false;
  },

  activeChanged() { renderCandidates(); },
};

$("multimask").addEventListener("change", () => resendActive());

async function resendActive() {
  if (state.active !== null && masks.has(state.active)) {
    await imageMode.send(0, state.active);
    draw();
  }
}

async function choose(index) {
  const found = masks.get(state.active);
  if (!found || index >= found.candidates.length) return;
  await sendJson(`/image/objects/${state.active}/choice`, "PUT", {index});
  found.chosen = index;
  relayer();
  renderCandidates();
  draw();
}

function relayer() {
  state.layers = state.objects.filter((obj) => masks.has(obj)).map((obj) => {
    const found = masks.get(obj);
    return found.candidates[found.chosen];
  });
}

function renderCandidates() {
  const area = $("candidates");
  area.replaceChildren();
  const found = masks.get(state.active);
  if (!found) return;
  found.candidates.forEach((_, index) => {
    const button = document.createElement("button");
    button.textContent = `${index + 1}: IoU ${found.iou[index].toFixed(2)}`;
    button.className = index === found.chosen ? "chosen" : "";
    button.dataset.candidate = index;
    button.addEventListener("click", () => choose(index));
    area.append(button);
  });
}
