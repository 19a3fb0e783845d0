// Live feed: asks for rows newer than the newest shown, every POLL_MS, and puts them on top,
// marked as arrived (only those flash; the rows of the page as loaded do not).
"use strict";

const POLL_MS = 700;
const MAX_ROWS = 200;

(function () {
  const table = document.getElementById("feed");
  if (!table || table.dataset.live !== "yes") return;
  const body = document.getElementById("feed-rows");
  const live = document.getElementById("live");
  let cursor = table.dataset.cursor;
  const filters = new URLSearchParams(window.location.search);
  filters.delete("before");

  async function poll() {
    filters.set("after", cursor);
    try {
      const response = await fetch(`/feed/rows?${filters}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(response.statusText);
      const html = (await response.text()).trim();
      cursor = response.headers.get("X-Feed-Cursor") || cursor;
      if (html) {
        const arrived = document.createElement("tbody");
        arrived.innerHTML = html;
        for (const row of arrived.querySelectorAll("tr")) row.classList.add("arrived");
        body.prepend(...arrived.children);
        const empty = document.querySelector(".empty");
        if (empty) empty.remove();
        body.querySelectorAll("tr").forEach((row, index) => {
          if (index >= MAX_ROWS) row.remove();
        });
      }
      live.classList.remove("stale");
    } catch (_) {
      live.classList.add("stale");
    }
    setTimeout(poll, POLL_MS);
  }
  setTimeout(poll, POLL_MS);
})();
