// tfcomp TFLite demo: restore a JPEG-decoded image with a fixed-size tile export on
// @tensorflow/tfjs-tflite (TFLite compiled to WebAssembly). The image is cut into overlapping
// tiles placed inside the image (margin = context pixels, >= the network's receptive radius),
// exactly like serving/litert_restore.py, so the result equals a whole-image pass.
//
// URL parameters (used by the headless test): ?model=URL&image=URL&margin=16&report=URL
// runs at once and POSTs {"ok", "width", "height", "rgb" (base64 uint8 RGB), "ms"} to `report`.
"use strict";

const params = new URLSearchParams(location.search);
const statusEl = document.getElementById("status");
const say = (text) => { statusEl.textContent = text; };

// An absolute URL: tfjs-tflite resolves a relative wasm path against the site root.
tflite.setWasmPath(new URL("node_modules/@tensorflow/tfjs-tflite/wasm/", location.href).href);

// [(window start, core start, core end)] covering 0..length with windows of `tile`.
function windows(length, tile, margin) {
  if (length <= tile) return [[0, 0, length]];
  const step = tile - 2 * margin, out = [];
  for (let core = 0; core < length;) {
    const end = Math.min(core + step, length);
    out.push([Math.min(Math.max(core - margin, 0), length - tile), core, end]);
    core = end;
  }
  return out;
}

async function loadModel(url) {
  const model = await tflite.loadTFLiteModel(url, {numThreads: 1});
  const shape = model.inputs[0].shape;  // [1, T, T, C]
  if (shape.some((d) => d < 0)) {
    throw new Error(`${url} has a dynamic input shape ${shape}: export it with --tile`);
  }
  return {model, th: shape[1], tw: shape[2], channels: shape[3]};
}

// rgb: Uint8Array H*W*3 -> Uint8Array H*W*3 restored.
function restore(m, rgb, h, w, margin) {
  const {model, th, tw} = m;
  if (2 * margin >= Math.min(th, tw)) throw new Error(`margin ${margin} too large for ${th}x${tw}`);
  const ph = Math.max(h, th), pw = Math.max(w, tw);   // edge-pad images smaller than a tile
  const x = new Float32Array(ph * pw * 3);
  for (let y = 0; y < ph; y++) {
    for (let xx = 0; xx < pw; xx++) {
      const s = (Math.min(y, h - 1) * w + Math.min(xx, w - 1)) * 3, d = (y * pw + xx) * 3;
      for (let c = 0; c < 3; c++) x[d + c] = rgb[s + c] / 255;
    }
  }
  const out = new Uint8Array(h * w * 3);
  const tile = new Float32Array(th * tw * 3);
  for (const [wy, cy0, cy1] of windows(ph, th, margin)) {
    for (const [wx, cx0, cx1] of windows(pw, tw, margin)) {
      for (let y = 0; y < th; y++) {
        tile.set(x.subarray(((wy + y) * pw + wx) * 3, ((wy + y) * pw + wx + tw) * 3), y * tw * 3);
      }
      const result = tf.tidy(() => model.predict(tf.tensor4d(tile, [1, th, tw, 3])));
      const r = result.dataSync();
      result.dispose();
      for (let y = cy0; y < Math.min(cy1, h); y++) {
        for (let xx = cx0; xx < Math.min(cx1, w); xx++) {
          const s = ((y - wy) * tw + (xx - wx)) * 3, d = (y * w + xx) * 3;
          for (let c = 0; c < 3; c++) {
            out[d + c] = Math.min(255, Math.max(0, Math.round(r[s + c] * 255)));
          }
        }
      }
    }
  }
  return out;
}

async function decode(blob) {
  const bitmap = await createImageBitmap(blob, {colorSpaceConversion: "none",
                                                premultiplyAlpha: "none"});
  const canvas = document.getElementById("input");
  canvas.width = bitmap.width; canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const rgb = new Uint8Array(bitmap.width * bitmap.height * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
  }
  return {rgb, h: bitmap.height, w: bitmap.width};
}

function show(rgb, h, w) {
  const canvas = document.getElementById("output");
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    img.data[i] = rgb[j]; img.data[i + 1] = rgb[j + 1]; img.data[i + 2] = rgb[j + 2];
    img.data[i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  const link = document.getElementById("download");
  link.href = canvas.toDataURL("image/png");
  link.hidden = false;
}

async function run(modelUrl, blob, margin) {
  say(`loading ${modelUrl}...`);
  const m = await loadModel(modelUrl);
  const {rgb, h, w} = await decode(blob);
  say(`restoring ${w}x${h} in ${m.th}x${m.tw} tiles...`);
  const t0 = performance.now();
  const out = restore(m, rgb, h, w, margin);
  const ms = performance.now() - t0;
  show(out, h, w);
  say(`restored ${w}x${h} in ${ms.toFixed(0)} ms (${tf.getBackend()} backend, TFLite wasm)`);
  return {out, h, w, ms};
}

function toBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

async function auto() {
  const report = params.get("report");
  try {
    const blob = await (await fetch(params.get("image"))).blob();
    const {out, h, w, ms} = await run(params.get("model"), blob,
                                      parseInt(params.get("margin") || "16", 10));
    if (report) {
      await fetch(report, {method: "POST", body: JSON.stringify(
          {ok: true, width: w, height: h, ms, rgb: toBase64(out)})});
    }
  } catch (e) {
    say(`error: ${e}`);
    if (report) await fetch(report, {method: "POST", body: JSON.stringify({ok: false, error: String(e)})});
  }
}

if (params.get("image") && params.get("model")) {
  auto();
} else {
  say("choose an image");
  document.getElementById("model").value = params.get("model") ||
      document.getElementById("model").value;
  document.getElementById("file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      await run(document.getElementById("model").value, file,
                parseInt(params.get("margin") || "16", 10));
    } catch (e) {
      say(`error: ${e}`);
    }
  });
}
