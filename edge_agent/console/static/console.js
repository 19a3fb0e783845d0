// Shared by every page: POST with the CSRF token, a toast for results, [data-post] buttons.
"use strict";

const csrfToken = document.querySelector('meta[name="csrf-token"]').content;

function toast(text, bad) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.className = bad ? "show bad" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ""; }, bad ? 6000 : 2500);
}

async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken },
    body: JSON.stringify(body || {}),
    credentials: "same-origin",
  });
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try {
      const detail = JSON.parse(text).detail;
      message = Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : String(detail);
    } catch (_) { /* plain text error */ }
    throw new Error(message || response.statusText);
  }
  return JSON.parse(text);
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-post]");
  if (!button) return;
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  button.disabled = true;
  try {
    const reply = await postJson(button.dataset.post, JSON.parse(button.dataset.body || "{}"));
    toast(reply.connectors ? `${reply.connectors.join(", ")} confirmed ${reply.label}`
      : `${reply.connector}: ${reply.previous || "-"} → ${reply.version} (${reply.event})`);
    if (button.hasAttribute("data-reload")) setTimeout(() => window.location.reload(), 600);
  } catch (error) {
    toast(error.message, true);
  } finally {
    button.disabled = false;
  }
});

document.addEventListener("click", (event) => {
  const row = event.target.closest("tr[data-href]");
  if (row && !event.target.closest("a")) window.location = row.dataset.href;
});
