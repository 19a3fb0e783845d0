// Health page: rendered again by the console every REFRESH_MS and swapped in, without a reload.
"use strict";

(function () {
  const REFRESH_MS = 2000;
  const main = document.querySelector("main");

  async function refresh() {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", cache: "no-store" });
      if (response.ok && !response.redirected) {
        const page = new DOMParser().parseFromString(await response.text(), "text/html");
        const fresh = page.querySelector("main");
        if (fresh) main.replaceChildren(...fresh.childNodes);
      }
    } catch (_) {
      // the banner (agent_state.js) says when the console itself does not answer
    }
    setTimeout(refresh, REFRESH_MS);
  }
  setTimeout(refresh, REFRESH_MS);
})();
