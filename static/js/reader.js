// The reading page: one image at a time, answered by mouse or keyboard.
// Talks to /api/v1/studies/<slug>/...; knows nothing about the images beyond
// the opaque URL the server hands it.
(function () {
  "use strict";

  const viewer = document.getElementById("viewer");
  const api = viewer.dataset.api;
  const $ = (id) => document.getElementById(id);
  const img = $("image");

  let step = null; // the server's current step
  let rating = null; // 1..6 on the detection scale
  let grade = null; // 0..4
  let focus = "realism"; // which question digit keys answer in a combined phase
  let busy = false;
  let pendingFeedback = null; // practice feedback waiting for Enter
  let review = null; // {position} while revisiting an earlier answer
  let lastStage = null;
  let interstitial = false;

  // Zoom, pan, window/level and invert live in viewer.js, which follows #image.
  const imageViewer = window.TuringViewer || { key: () => false };

  // --- talking to the server ------------------------------------------------
  function csrfToken() {
    const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  async function call(method, path, body) {
    const res = await fetch(api + path, {
      method,
      credentials: "same-origin",
      headers: Object.assign(
        { Accept: "application/json" },
        body ? { "Content-Type": "application/json", "X-CSRFToken": csrfToken() } : {}
      ),
      body: body ? JSON.stringify(body) : undefined,
    });
    let data = {};
    try { data = await res.json(); } catch (_) { /* non-JSON error page */ }
    if (!res.ok) {
      const err = new Error(data.error || `The server answered ${res.status}.`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function say(text, kind) {
    const s = $("status");
    s.textContent = text || "";
    s.className = "status" + (kind ? " " + kind : "");
  }

  // --- rendering a step -----------------------------------------------------
  function buildScale(phase) {
    const box = $("scale");
    box.replaceChildren();
    $("q-realism-title").textContent = phase.question || "";
    for (const [value, label] of phase.scale || []) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.confidence = String(value);
      const k = document.createElement("kbd");
      k.textContent = String(value);
      b.append(k, " " + label);
      b.addEventListener("click", () => choose("confidence", value));
      box.append(b);
    }
  }

  function stageKey(s) { return s.phase ? `${s.stage}` : null; }

  function showStep(s) {
    // A step that only redirects (the last answer given) has no phase: forget
    // the old step so nothing reads a phase from it while the page navigates.
    if (s.redirect) { step = null; window.location.assign(s.redirect); return; }
    step = s;
    const key = stageKey(s);
    if (key !== lastStage) {
      lastStage = key;
      buildScale(s.phase);
      // A stage's introduction comes at its start, not again on resuming.
      if (s.position === 0) showInterstitial(s);
    }
    const phase = s.phase;
    $("phase-label").textContent = phase.practice
      ? "Practice round"
      : `Part ${phase.number} of ${phase.count}`;
    $("q-realism").hidden = !phase.asks_realism;
    $("q-grade").hidden = !phase.asks_grade;
    const shown = review ? review.position : s.position;
    const done = Math.min(shown + 1, s.total);
    $("progress-text").textContent = `${done} / ${s.total}`;
    $("progress-bar").style.width = `${(100 * shown) / Math.max(1, s.total)}%`;
    $("nav-review").hidden = !s.can_revise;
    $("back").disabled = shown === 0;
    $("finish").hidden = !s.review;
    if (s.review && !review) {
      img.removeAttribute("src");
      $("q-realism").hidden = true;
      $("q-grade").hidden = true;
      $("confirm").hidden = true;
      say("All cases answered. Review earlier answers, or finish this part.");
      return;
    }
    $("confirm").hidden = false;
    const src = review ? review.image : s.image;
    if (img.getAttribute("src") !== src) img.src = src;
    if (s.preload && !review) { const p = new Image(); p.src = s.preload; }
    rating = review ? review.confidence : null;
    grade = review ? review.kl_grade : null;
    focus = phase.asks_realism ? "realism" : "grade";
    refreshChoices();
  }

  function showInterstitial(s) {
    const phase = s.phase;
    $("inter-title").textContent = phase.practice
      ? "Practice round"
      : `Part ${phase.number} of ${phase.count}`;
    $("inter-text").textContent = phase.practice
      ? phase.intro + " These first images are for practice: after each answer you will see the reference."
      : phase.intro;
    interstitial = true;
    $("interstitial").hidden = false;
    $("inter-go").focus();
  }

  function closeInterstitial() {
    interstitial = false;
    $("interstitial").hidden = true;
  }
  $("inter-go").addEventListener("click", closeInterstitial);

  function complete() {
    const p = step.phase;
    return (!p.asks_realism || rating !== null) && (!p.asks_grade || grade !== null);
  }

  function refreshChoices() {
    document.querySelectorAll("[data-confidence]").forEach((b) => {
      b.classList.toggle("chosen", Number(b.dataset.confidence) === rating);
    });
    document.querySelectorAll("[data-grade]").forEach((b) => {
      b.classList.toggle("chosen", Number(b.dataset.grade) === grade);
    });
    const combined = step && step.phase.asks_realism && step.phase.asks_grade;
    $("q-realism").classList.toggle("active", combined && focus === "realism");
    $("q-grade").classList.toggle("active", combined && focus === "grade");
    $("confirm").disabled = busy || !step || !complete();
  }

  function choose(what, value) {
    if (busy || pendingFeedback || interstitial) return;
    if (what === "confidence") {
      rating = value;
      if (step.phase.asks_grade) focus = "grade";
    } else {
      grade = value;
    }
    refreshChoices();
  }
  document.querySelectorAll("[data-grade]").forEach((b) => {
    b.addEventListener("click", () => choose("grade", Number(b.dataset.grade)));
  });

  // --- answering ------------------------------------------------------------
  async function confirm() {
    if (busy || !step || !complete()) return;
    busy = true;
    refreshChoices();
    say("Saving…");
    const body = {
      stage: step.stage,
      position: review ? review.position : step.position,
      confidence: step.phase.asks_realism ? rating : null,
      kl_grade: step.phase.asks_grade ? grade : null,
    };
    try {
      if (review) {
        await call("POST", "/revisions", body);
        const nextPos = review.position + 1;
        review = null;
        if (nextPos < step.position) await openReview(nextPos);
        else showStep(await call("GET", "/next"));
        say("Changed.");
      } else {
        // What the reader did with the image rides along with the answer.
        if (imageViewer.log) body.interaction = imageViewer.log();
        const res = await call("POST", "/answers", body);
        say("");
        if (res.feedback) {
          showFeedback(res.feedback, res.next);
        } else {
          showStep(res.next);
        }
      }
    } catch (err) {
      say(err.status === 503 || !err.status
        ? "Not saved: the connection failed. Press Enter to try again."
        : err.message, "error");
    } finally {
      busy = false;
      refreshChoices();
    }
  }
  $("confirm").addEventListener("click", confirm);

  function showFeedback(fb, next) {
    const box = $("feedback");
    const parts = [fb.correct ? "Correct." : "Not quite."];
    if (fb.truth) parts.push(`This image is ${fb.truth}.`);
    parts.push(`Reference KL grade: ${fb.reference_kl}.`);
    box.textContent = parts.join(" ") + " Press Enter to continue.";
    box.className = "feedback " + (fb.correct ? "ok" : "miss");
    box.hidden = false;
    pendingFeedback = next;
  }

  function continueAfterFeedback() {
    const next = pendingFeedback;
    pendingFeedback = null;
    $("feedback").hidden = true;
    showStep(next);
  }

  async function openReview(position) {
    const data = await call("GET", `/answers/${step.stage}/${position}`);
    review = data;
    showStep(step);
  }

  $("back").addEventListener("click", async () => {
    if (!step || busy) return;
    const current = review ? review.position : step.position;
    if (current > 0) await openReview(current - 1);
  });

  $("finish").addEventListener("click", async () => {
    if (busy) return;
    busy = true;
    try {
      const res = await call("POST", "/finish", { stage: step.stage });
      review = null;
      showStep(res.next);
    } catch (err) {
      say(err.message, "error");
    } finally {
      busy = false;
    }
  });

  // --- keyboard -------------------------------------------------------------
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    if (k === "Enter") {
      e.preventDefault();
      if (interstitial) closeInterstitial();
      else if (pendingFeedback) continueAfterFeedback();
      else confirm();
      return;
    }
    if (interstitial || pendingFeedback || !step) return;
    const p = step.phase;
    if (/^[0-9]$/.test(k)) {
      const n = Number(k);
      const realismKeys = p.asks_realism && n >= 1 && n <= 6;
      const gradeKeys = p.asks_grade && n <= 4;
      if (realismKeys && (!p.asks_grade || focus === "realism")) choose("confidence", n);
      else if (gradeKeys && (!p.asks_realism || focus === "grade")) choose("grade", n);
      e.preventDefault();
      return;
    }
    switch (k.toLowerCase()) {
      case "tab":
        if (p.asks_realism && p.asks_grade) {
          e.preventDefault();
          focus = focus === "realism" ? "grade" : "realism";
          refreshChoices();
        }
        break;
      case "b": if (step.can_revise) $("back").click(); break;
      default: if (imageViewer.key(e)) e.preventDefault(); break;
    }
  });

  // --- start: resume wherever the server says we are --------------------------
  call("GET", "/next").then(showStep).catch((err) => say(err.message, "error"));
})();
