// The dashboard's panel refreshes itself: every few seconds it is fetched again and swapped in,
// except while an operator has a confirmation open. Actions are plain forms (with their CSRF
// token), so the dashboard works without this script too, only without refreshing.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const panel = document.getElementById("panel");
  if (!panel) return;

  async function refresh() {
    if (panel.querySelector("details[open]")) return;
    try {
      const response = await fetch(panel.dataset.refresh, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (response.status === 401) {
        window.location.reload();
        return;
      }
      if (!response.ok) throw new Error("the dashboard answered " + response.status);
      const html = await response.text();
      if (!panel.querySelector("details[open]")) panel.innerHTML = html;
      panel.classList.remove("stale");
    } catch (error) {
      panel.classList.add("stale");
      panel.title = "Not refreshed: " + error.message;
    }
  }

  setInterval(refresh, REFRESH_MS);
})();
