// Shared by every page: POST with the CSRF token, a toast for results, [data-post] buttons,
// the operator name kept as soon as it changes (Enter, Tab or a click away).
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

(function () {
  const form = document.getElementById("operator");
  if (!form) return;
  const input = form.elements.name;
  let kept = input.value;
  let sent = null; // the value being sent now: Enter fires both change and submit

  async function keep() {
    if (input.value === sent || (input.value === kept && !input.classList.contains("refused"))) return;
    sent = input.value;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "X-CSRF-Token": csrfToken, Accept: "application/json" },
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      const text = await response.text();
      if (!response.ok) throw new Error(text || response.statusText);
      kept = input.value = JSON.parse(text).operator;
      input.classList.remove("refused");
      input.removeAttribute("aria-invalid");
      input.title = "";
      toast(`Confirmations are now recorded as ${kept}`);
    } catch (error) {
      input.classList.add("refused");
      input.setAttribute("aria-invalid", "true");
      input.title = `${error.message}; confirmations are still recorded as ${kept}`;
      toast(`Name not kept: ${error.message}. Confirmations are still recorded as ${kept}.`, true);
    } finally {
      sent = null;
    }
  }

  input.addEventListener("change", keep);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    keep();
  });
})();
