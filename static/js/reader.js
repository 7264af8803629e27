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
  // The phase's questions come from the server, each naming its answer field;
  // this page knows no question of its own.
  let questions = [];
  let chosen = {}; // answer field -> chosen value
  let focus = 0; // index of the question digit keys answer when there are two
  let busy = false;
  let pendingFeedback = null; // practice feedback waiting for Enter
  let review = null; // {position} while revisiting an earlier answer
  let lastStage = null;
  let interstitial = false;

  // Zoom, pan, window/level and invert live in viewer.js, which follows #image.
  const imageViewer = window.ReadingViewer || { key: () => false };

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
  // The key a value is typed with, from the question's keyboard map.
  function keyFor(q, value) {
    for (const [key, v] of Object.entries(q.keys || {})) if (v === value) return key;
    return null;
  }

  function buildQuestions(phase) {
    const box = $("questions");
    box.replaceChildren();
    questions = phase.questions || [];
    questions.forEach((q, index) => {
      const section = document.createElement("section");
      section.className = "question";
      section.dataset.field = q.field;
      const h = document.createElement("h3");
      h.textContent = q.title + (q.required === false ? " (optional)" : "");
      section.append(h);
      if (q.type === "free_text") {
        const text = document.createElement("textarea");
        text.rows = 2;
        text.maxLength = q.max_length || 2000;
        text.setAttribute("aria-label", q.title);
        text.addEventListener("input", () => {
          chosen[q.field] = text.value;
          refreshChoices();
        });
        text.addEventListener("focus", () => { focus = index; refreshChoices(); });
        section.append(text);
        box.append(section);
        return;
      }
      const list = document.createElement("div");
      // Labelled choices stack; bare digits sit in a row.
      const labelled = q.choices.some(([, label]) => label);
      list.className = labelled ? "scale" : "grades";
      for (const [value, label, description] of q.choices) {
        const b = document.createElement("button");
        b.type = "button";
        b.dataset.value = String(value);
        if (description) b.title = description;
        const key = keyFor(q, value);
        if (key !== null) {
          const k = document.createElement("kbd");
          k.textContent = key;
          b.append(k);
        }
        if (label) b.append(" " + label);
        else if (key === null) b.append(String(value));
        b.addEventListener("click", () => choose(index, value));
        list.append(b);
      }
      section.append(list);
      if (q.hint) {
        const hint = document.createElement("p");
        hint.className = "hint";
        hint.textContent = q.hint;
        section.append(hint);
      }
      box.append(section);
    });
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
      buildQuestions(s.phase);
      // A stage's introduction comes at its start, not again on resuming.
      if (s.position === 0) showInterstitial(s);
    }
    const phase = s.phase;
    $("phase-label").textContent = phase.practice
      ? "Practice round"
      : `Part ${phase.number} of ${phase.count}`;
    $("questions").hidden = false;
    const shown = review ? review.position : s.position;
    const done = Math.min(shown + 1, s.total);
    $("progress-text").textContent = `${done} / ${s.total}`;
    $("progress-bar").style.width = `${(100 * shown) / Math.max(1, s.total)}%`;
    $("nav-review").hidden = !s.can_revise;
    $("back").disabled = shown === 0;
    $("finish").hidden = !s.review;
    if (s.review && !review) {
      img.removeAttribute("src");
      $("questions").hidden = true;
      $("confirm").hidden = true;
      say("All cases answered. Review earlier answers, or finish this part.");
      return;
    }
    $("confirm").hidden = false;
    const src = review ? review.image : s.image;
    if (img.getAttribute("src") !== src) img.src = src;
    if (s.preload && !review) { const p = new Image(); p.src = s.preload; }
    chosen = {};
    if (review) for (const q of questions) chosen[q.field] = review[q.field];
    focusQuestion(0);
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

  function answered(q) {
    const value = chosen[q.field];
    if (value === undefined || value === null) return false;
    return typeof value !== "string" || value.trim() !== "";
  }

  // Optional questions may stay unanswered; the others hold the submit back.
  function complete() {
    return questions.every((q) => q.required === false || answered(q));
  }

  function refreshChoices() {
    document.querySelectorAll("#questions .question").forEach((section, index) => {
      const value = chosen[section.dataset.field];
      section.querySelectorAll("[data-value]").forEach((b) => {
        b.classList.toggle("chosen", value !== undefined && value !== null
          && b.dataset.value === String(value));
      });
      const text = section.querySelector("textarea");
      if (text && text.value !== (value || "")) text.value = value || "";
      section.classList.toggle("active", questions.length > 1 && focus === index);
    });
    $("confirm").disabled = busy || !step || !complete();
  }

  function choose(index, value) {
    if (busy || pendingFeedback || interstitial) return;
    chosen[questions[index].field] = value;
    // On to the next question; into its box where it asks for text.
    if (index + 1 < questions.length) focusQuestion(index + 1);
    else refreshChoices();
  }

  // --- answering ------------------------------------------------------------
  async function confirm() {
    if (busy || !step || !complete()) return;
    busy = true;
    refreshChoices();
    say("Saving…");
    const body = {
      stage: step.stage,
      position: review ? review.position : step.position,
    };
    // Extra questions go in "answers"; an optional one left empty is left out.
    const extras = {};
    for (const q of questions) {
      if (!q.extra) body[q.field] = chosen[q.field];
      else if (answered(q)) extras[q.field] = chosen[q.field];
    }
    if (questions.some((q) => q.extra)) body.answers = extras;
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
    // A phase graded only by its own questions has no reference to show.
    const scored = fb.correct === true || fb.correct === false;
    const parts = scored ? [fb.correct ? "Correct." : "Not quite."] : ["Answer saved."];
    if (fb.truth) parts.push(`This image is ${fb.truth}.`);
    if (fb.reference_label) parts.push(`${fb.reference_label}: ${fb.reference_kl}.`);
    for (const r of fb.references || []) parts.push(`${r.label}: ${r.value} (${r.value_label}).`);
    box.textContent = parts.join(" ") + " Press Enter to continue.";
    box.className = "feedback" + (scored ? (fb.correct ? " ok" : " miss") : "");
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
  function focusQuestion(index) {
    focus = index;
    const q = questions[focus];
    const text = q && q.type === "free_text"
      ? document.querySelector(`#questions .question:nth-child(${focus + 1}) textarea`)
      : null;
    if (text) text.focus();
    else if (document.activeElement && document.activeElement.tagName === "TEXTAREA") {
      document.activeElement.blur();
    }
    refreshChoices();
  }

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key;
    // In a free-text answer the keys type text: Enter submits (Shift+Enter
    // breaks the line), Tab moves to the next question, Escape leaves the box.
    if (e.target && e.target.tagName === "TEXTAREA") {
      if (k === "Enter" && !e.shiftKey) {
        e.preventDefault();
        if (pendingFeedback) continueAfterFeedback();
        else confirm();
      }
      else if (k === "Tab") {
        e.preventDefault();
        focusQuestion((focus + 1) % questions.length);
      } else if (k === "Escape") e.target.blur();
      return;
    }
    if (k === "Enter") {
      e.preventDefault();
      if (interstitial) closeInterstitial();
      else if (pendingFeedback) continueAfterFeedback();
      else confirm();
      return;
    }
    if (interstitial || pendingFeedback || !step) return;
    // The focused question's keyboard map: digits for the scales of this
    // study's own questions, first letters for some nominal ones.
    const q = questions[focus];
    const keys = (q && q.keys) || {};
    const mapped = Object.prototype.hasOwnProperty.call(keys, k) ? k
      : Object.prototype.hasOwnProperty.call(keys, k.toLowerCase()) ? k.toLowerCase() : null;
    if (mapped !== null) {
      choose(focus, keys[mapped]);
      e.preventDefault();
      return;
    }
    if (/^[0-9]$/.test(k)) { e.preventDefault(); return; }
    switch (k.toLowerCase()) {
      case "tab":
        if (questions.length > 1) {
          e.preventDefault();
          focusQuestion((focus + 1) % questions.length);
        }
        break;
      case "b": if (step.can_revise) $("back").click(); break;
      default: if (imageViewer.key(e)) e.preventDefault(); break;
    }
  });

  // --- start: resume wherever the server says we are --------------------------
  call("GET", "/next").then(showStep).catch((err) => say(err.message, "error"));
})();
