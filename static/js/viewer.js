// The image viewer of the reading page: zoom about the cursor, pan, true
// window/level on pixel values, invert, fit-to-screen and 1:1 pixels.
//
// It watches <img id="image"> (which reader.js points at each case's URL) and
// draws that image's pixels into <canvas id="view">; it knows nothing about
// questions or answers. reader.js hands it the keys it does not use itself
// through ReadingViewer.key(event).
//
// Window/level follows DICOM PS3.3 C.11.2.1.2 (the linear VOI LUT function):
//   y = 0                                  if x <= c - 0.5 - (w - 1) / 2
//   y = 255                                if x >  c - 0.5 + (w - 1) / 2
//   y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255   otherwise
// so W 256 / L 128 shows an 8-bit image exactly as stored.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const img = $("image");
  const area = $("canvas");
  const view = $("view");
  if (!img || !area || !view) return;
  const ctx = view.getContext("2d");

  const PRESETS = {
    default: { window: 256, level: 128, label: "Default" },
    bone: { window: 120, level: 170, label: "Bone" },
    soft: { window: 140, level: 90, label: "Soft tissue" },
    full: { window: null, level: null, label: "Full range" }, // the image's own min..max
  };
  const PRESET_ORDER = ["default", "bone", "soft", "full"];
  const MAX_SCALE = 32; // screen pixels per image pixel
  const PIXEL_ZOOM = 6; // from here on each image pixel is drawn as a sharp square

  const state = {
    scale: 1, // CSS px per image pixel
    x: 0, // CSS px from the canvas's left edge to the image's left edge
    y: 0,
    window: 256,
    level: 128,
    preset: "default",
    invert: false,
    fitted: true, // follow the canvas size until the reader zooms or pans
  };
  let pixels = null; // Uint8ClampedArray of gray values, one per image pixel
  let width = 0;
  let height = 0;
  let range = [0, 255];
  let shown = null; // offscreen canvas: the image after window/level
  let shownData = null;
  let pointer = null; // last pointer position over the canvas, CSS px
  let frame = 0;
  let lutDirty = true;

  // --- interaction log: what the reader did with the current image ----------
  // Compact events [ms since image shown, kind, ...numbers]; the answer form
  // may read it with ReadingViewer.log() and send it along with the answer.
  let log = { started: performance.now(), firstInput: null, events: [] };
  let lastViewportAt = -1e9;

  function note(kind, ...values) {
    const t = Math.round(performance.now() - log.started);
    if (log.firstInput === null && kind !== "v") log.firstInput = t;
    log.events.push([t, kind, ...values.map((v) => Math.round(v * 10) / 10)]);
    if (log.events.length > 2000) log.events.splice(0, log.events.length - 2000);
  }

  let lastViewport = "";
  let viewportTimer = 0;
  function noteViewport(force) {
    // The visible image rectangle in image pixels when it changed, at most
    // 5 times a second; the last change of a burst is logged when it settles.
    const r = visibleRect();
    if (!r) return;
    const key = r.map((n) => Math.round(n)).join();
    if (key === lastViewport && !force) return;
    const now = performance.now();
    if (!force && now - lastViewportAt < 200) {
      if (!viewportTimer) viewportTimer = setTimeout(() => { viewportTimer = 0; noteViewport(false); }, 200);
      return;
    }
    lastViewportAt = now;
    lastViewport = key;
    note("v", r[0], r[1], r[2], r[3]);
  }

  function visibleRect() {
    if (!width) return null;
    const x0 = Math.max(0, -state.x / state.scale);
    const y0 = Math.max(0, -state.y / state.scale);
    const x1 = Math.min(width, (area.clientWidth - state.x) / state.scale);
    const y1 = Math.min(height, (area.clientHeight - state.y) / state.scale);
    return [x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0)];
  }

  // --- geometry -------------------------------------------------------------
  function fitScale() {
    if (!width) return 1;
    return Math.min(area.clientWidth / width, area.clientHeight / height) * 0.96;
  }

  function minScale() { return Math.min(fitScale(), 1 / devicePixelRatio) / 4; }

  function fit() {
    state.scale = fitScale();
    state.x = (area.clientWidth - width * state.scale) / 2;
    state.y = (area.clientHeight - height * state.scale) / 2;
    state.fitted = true;
  }

  function clampPan() {
    // Keep at least a quarter of the canvas covered by the image, or the image
    // centred where it is smaller than that.
    const cw = area.clientWidth;
    const ch = area.clientHeight;
    const w = width * state.scale;
    const h = height * state.scale;
    const mx = Math.min(w, cw) / 4;
    const my = Math.min(h, ch) / 4;
    state.x = Math.min(cw - mx, Math.max(mx - w, state.x));
    state.y = Math.min(ch - my, Math.max(my - h, state.y));
  }

  function zoomAt(factor, px, py) {
    if (!width) return;
    const next = Math.min(MAX_SCALE, Math.max(minScale(), state.scale * factor));
    setScale(next, px, py);
  }

  function setScale(next, px, py) {
    // The image point under (px, py) stays under (px, py).
    const u = (px - state.x) / state.scale;
    const v = (py - state.y) / state.scale;
    state.scale = next;
    state.x = px - u * next;
    state.y = py - v * next;
    state.fitted = false;
    clampPan();
    changed();
    note("z", next * devicePixelRatio, u, v); // logged about the image point
  }

  function anchor() {
    // Keys and buttons zoom about the cursor where it is on the image, else
    // about the middle of the canvas.
    const p = pointer;
    const u = p && (p.x - state.x) / state.scale;
    const v = p && (p.y - state.y) / state.scale;
    if (p && u >= 0 && v >= 0 && u < width && v < height) return p;
    return { x: area.clientWidth / 2, y: area.clientHeight / 2 };
  }

  function zoomAtCursor(factor) {
    const p = anchor();
    zoomAt(factor, p.x, p.y);
  }

  function oneToOne() {
    // One image pixel on one device pixel.
    if (!width) return;
    const p = anchor();
    setScale(1 / devicePixelRatio, p.x, p.y);
  }

  function fitToScreen() {
    if (!width) return;
    fit();
    note("z", state.scale * devicePixelRatio, -1, -1);
    changed();
  }

  function pan(dx, dy) {
    if (!width) return;
    state.x += dx;
    state.y += dy;
    state.fitted = false;
    clampPan();
    changed();
  }

  // --- window/level ---------------------------------------------------------
  function setWindowLevel(w, l, preset) {
    state.window = Math.round(Math.min(512, Math.max(1, w)));
    state.level = Math.round(Math.min(383, Math.max(-128, l)));
    state.preset = preset || null;
    lutDirty = true;
    changed();
  }

  function applyPreset(name) {
    const p = PRESETS[name];
    if (!p) return;
    if (p.window === null) {
      const [lo, hi] = range;
      setWindowLevel(hi - lo + 1, (lo + hi + 1) / 2, name);
    } else {
      setWindowLevel(p.window, p.level, name);
    }
    note("p", PRESET_ORDER.indexOf(name));
  }

  function lut() {
    const table = new Uint8ClampedArray(256);
    const w = state.window;
    const c = state.level;
    const lo = c - 0.5 - (w - 1) / 2;
    const hi = c - 0.5 + (w - 1) / 2;
    for (let x = 0; x < 256; x++) {
      let y;
      if (x <= lo) y = 0;
      else if (x > hi) y = 255;
      else y = ((x - (c - 0.5)) / Math.max(1, w - 1) + 0.5) * 255;
      table[x] = state.invert ? 255 - y : y;
    }
    return table;
  }

  function renderPixels() {
    const table = lut();
    const out = shownData.data;
    for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
      const y = table[pixels[i]];
      out[j] = y;
      out[j + 1] = y;
      out[j + 2] = y;
    }
    shown.getContext("2d").putImageData(shownData, 0, 0);
    lutDirty = false;
  }

  // --- drawing --------------------------------------------------------------
  function changed() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    const dpr = devicePixelRatio || 1;
    const cw = area.clientWidth;
    const ch = area.clientHeight;
    if (view.width !== Math.round(cw * dpr) || view.height !== Math.round(ch * dpr)) {
      view.width = Math.round(cw * dpr);
      view.height = Math.round(ch * dpr);
    }
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, view.width, view.height);
    if (pixels) {
      if (lutDirty) renderPixels();
      ctx.imageSmoothingEnabled = state.scale * dpr < PIXEL_ZOOM;
      ctx.imageSmoothingQuality = "high";
      // Whole device pixels, so 1:1 puts each image pixel on exactly one.
      const x = Math.round(state.x * dpr);
      const y = Math.round(state.y * dpr);
      ctx.drawImage(shown, x, y, width * state.scale * dpr, height * state.scale * dpr);
    }
    readouts();
    noteViewport(false);
  }

  function readouts() {
    $("wl-readout").textContent = pixels
      ? `W ${state.window} L ${state.level}` +
        (state.preset ? ` · ${PRESETS[state.preset].label}` : "") +
        (state.invert ? " · inverted" : "")
      : "";
    const percent = Math.round(state.scale * devicePixelRatio * 100);
    $("zoom-readout").textContent = pixels
      ? `${percent}%` + (Math.abs(state.scale * devicePixelRatio - 1) < 1e-6 ? " · 1:1" : "") +
        (state.fitted ? " · fit" : "")
      : "";
    let text = "";
    if (pixels && pointer) {
      // The epsilon keeps a point on a pixel edge in that pixel through zooms.
      const u = Math.floor((pointer.x - state.x) / state.scale + 1e-6);
      const v = Math.floor((pointer.y - state.y) / state.scale + 1e-6);
      if (u >= 0 && v >= 0 && u < width && v < height) {
        text = `x ${u} y ${v} · value ${pixels[v * width + u]}`;
      }
    }
    $("pixel-readout").textContent = text;
    document.querySelectorAll("[data-preset]").forEach((b) => {
      b.classList.toggle("chosen", b.dataset.preset === state.preset);
    });
  }

  // --- loading an image -----------------------------------------------------
  function clear() {
    pixels = null;
    width = 0;
    height = 0;
    changed();
  }

  function load() {
    if (!img.getAttribute("src")) { clear(); return; }
    if (!img.complete || !img.naturalWidth) return; // the load event comes later
    width = img.naturalWidth;
    height = img.naturalHeight;
    const off = document.createElement("canvas");
    off.width = width;
    off.height = height;
    const octx = off.getContext("2d", { willReadFrequently: true });
    octx.drawImage(img, 0, 0);
    const rgba = octx.getImageData(0, 0, width, height).data;
    pixels = new Uint8ClampedArray(width * height);
    let lo = 255;
    let hi = 0;
    for (let i = 0, j = 0; i < pixels.length; i++, j += 4) {
      const g = rgba[j]; // stored as 8-bit grayscale, so R = G = B
      pixels[i] = g;
      if (g < lo) lo = g;
      if (g > hi) hi = g;
    }
    range = [lo, hi];
    shown = off;
    shownData = octx.createImageData(width, height);
    for (let j = 3; j < shownData.data.length; j += 4) shownData.data[j] = 255;
    reset();
    log = { started: performance.now(), firstInput: null, events: [] };
    lastViewport = "";
    noteViewport(true);
  }

  function reset() {
    state.invert = false;
    state.window = 256;
    state.level = 128;
    state.preset = "default";
    lutDirty = true;
    if (width) fit();
    changed();
  }

  img.addEventListener("load", load);
  // reader.js swaps the src for each case (and removes it between parts).
  new MutationObserver(() => {
    if (!img.getAttribute("src")) clear();
    else if (img.complete && img.naturalWidth) load();
  }).observe(img, { attributes: true, attributeFilter: ["src"] });
  new ResizeObserver(() => {
    if (state.fitted && width) fit();
    else if (width) clampPan();
    changed();
  }).observe(area);

  // --- mouse ----------------------------------------------------------------
  function local(e) {
    const r = area.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  area.addEventListener("wheel", (e) => {
    e.preventDefault();
    pointer = local(e);
    // Trackpads send many small deltas, wheels a few large ones.
    const steps = Math.max(-4, Math.min(4, -e.deltaY / 100));
    zoomAt(Math.pow(1.2, steps), pointer.x, pointer.y);
  }, { passive: false });

  let drag = null;
  let pendingPan = null;
  area.addEventListener("contextmenu", (e) => e.preventDefault());
  area.addEventListener("pointerdown", (e) => {
    drag = {
      windowing: e.button === 2 || e.shiftKey,
      x: e.clientX,
      y: e.clientY,
      x0: e.clientX,
      y0: e.clientY,
      window: state.window,
      level: state.level,
      moved: 0,
    };
    area.setPointerCapture(e.pointerId);
  });
  area.addEventListener("pointermove", (e) => {
    pointer = local(e);
    if (!drag) { changed(); return; }
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    drag.x = e.clientX;
    drag.y = e.clientY;
    drag.moved += Math.abs(dx) + Math.abs(dy);
    if (drag.windowing) {
      // Radiologists' convention: horizontal drag sets the window (right:
      // wider), vertical the level (down: higher level, a darker image).
      // Measured from where the drag began, so no rounding accumulates.
      setWindowLevel(drag.window + (e.clientX - drag.x0), drag.level + (e.clientY - drag.y0), null);
    } else {
      pendingPan = pendingPan || [0, 0];
      pendingPan[0] += dx;
      pendingPan[1] += dy;
      pan(dx, dy);
    }
  });
  function endDrag() {
    if (drag && drag.windowing && drag.moved) note("w", state.window, state.level);
    if (pendingPan) note("m", pendingPan[0], pendingPan[1]);
    pendingPan = null;
    drag = null;
  }
  area.addEventListener("pointerup", endDrag);
  area.addEventListener("pointercancel", endDrag);
  area.addEventListener("pointerleave", () => { if (!drag) { pointer = null; changed(); } });

  // --- buttons and keys -----------------------------------------------------
  const click = (id, fn) => { const b = $(id); if (b) b.addEventListener("click", fn); };
  function toggleInvert() {
    state.invert = !state.invert;
    lutDirty = true;
    note("i", state.invert ? 1 : 0);
    changed();
  }
  function nudgeWindowLevel(dw, dl) {
    setWindowLevel(state.window + dw, state.level + dl, null);
    note("w", state.window, state.level);
  }
  click("zoom-in", () => zoomAtCursor(1.25));
  click("zoom-out", () => zoomAtCursor(0.8));
  click("fit", fitToScreen);
  click("one-to-one", oneToOne);
  click("invert", toggleInvert);
  click("reset", () => { reset(); note("r"); });
  document.querySelectorAll("[data-preset]").forEach((b) => {
    b.addEventListener("click", () => applyPreset(b.dataset.preset));
  });
  click("keymap-toggle", () => { $("keymap").hidden = !$("keymap").hidden; });

  const PAN_STEP = 60;
  // Returns true when the key was the viewer's.
  function key(e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return false;
    if (e.shiftKey && /^Digit[1-4]$/.test(e.code)) {
      applyPreset(PRESET_ORDER[Number(e.code.slice(5)) - 1]);
      return true;
    }
    switch (e.key) {
      case "+": case "=": zoomAtCursor(1.25); return true;
      case "-": case "_": zoomAtCursor(0.8); return true;
      case "f": case "F": fitToScreen(); return true;
      case "p": case "P": oneToOne(); return true;
      case "i": case "I": toggleInvert(); return true;
      case "r": case "R": reset(); note("r"); return true;
      case "w": case "W": nudgeWindowLevel(0, -8); return true; // brighter
      case "s": case "S": nudgeWindowLevel(0, 8); return true; // darker
      case "a": case "A": nudgeWindowLevel(-16, 0); return true; // more contrast
      case "d": case "D": nudgeWindowLevel(16, 0); return true; // less contrast
      case "ArrowLeft": pan(PAN_STEP, 0); note("m", PAN_STEP, 0); return true;
      case "ArrowRight": pan(-PAN_STEP, 0); note("m", -PAN_STEP, 0); return true;
      case "ArrowUp": pan(0, PAN_STEP); note("m", 0, PAN_STEP); return true;
      case "ArrowDown": pan(0, -PAN_STEP); note("m", 0, -PAN_STEP); return true;
      case "?": $("keymap").hidden = !$("keymap").hidden; return true;
      default: return false;
    }
  }

  window.ReadingViewer = {
    key,
    // What the reader did with the image now shown; see note() above.
    log() {
      return {
        first_input_ms: log.firstInput,
        answer_ms: Math.round(performance.now() - log.started),
        events: log.events.slice(),
      };
    },
  };
  changed();
})();
