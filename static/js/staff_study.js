// The staff study page: copy buttons for new invitation links, and the new
// links brought into view (the form posts to "...#new-links" for browsers
// without this script).
(function () {
  "use strict";

  async function copy(text, button) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      // No clipboard API outside secure contexts (plain http on a LAN name):
      // copy through a selected, off-screen text area instead.
      const area = document.createElement("textarea");
      area.value = text;
      area.style.position = "fixed";
      area.style.left = "-9999px";
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    const label = button.textContent;
    button.textContent = "Copied";
    button.dataset.copied = "true";
    setTimeout(() => { button.textContent = label; }, 1500);
  }

  document.addEventListener("click", (e) => {
    const one = e.target.closest("[data-copy]");
    if (one) { copy(one.dataset.copy, one); return; }
    const all = e.target.closest("[data-copy-all]");
    if (all) {
      const links = [...document.querySelectorAll(all.dataset.copyAll)].map((c) => c.textContent);
      copy(links.join("\n"), all);
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const fresh = document.getElementById("new-links");
    if (fresh) fresh.scrollIntoView({ block: "start" });
  });
})();
