// Review queue: one connector at a time; O = OK, K = KO, B = whole board OK, arrows or the
// Back / Skip buttons to move, U (or Ctrl+Z) or the Undo button to take the last label back.
// The queue is asked for again every POLL_MS, so new boards appear without a reload.
"use strict";

(function () {
  const POLL_MS = 5000;
  const first = JSON.parse(document.getElementById("queue").textContent);
  const view = document.getElementById("review");
  const $ = (id) => document.getElementById(id);
  const key = (item) => `${item.result_id}/${item.connector}`;
  let queue = first.items;
  let total = first.total;
  let index = 0;
  let busy = false;
  let changes = 0; // labels given or taken back: a queue fetched before one is out of date
  const undone = []; // labels that can be taken back, the last one at the end

  function show() {
    $("remaining").textContent = total;
    $("b-undo").disabled = !undone.length;
    $("b-undo").title = undone.length ? `Take back: ${undone[undone.length - 1].text}` : "Nothing to take back";
    if (!queue.length) {
      view.hidden = true;
      $("r-empty").hidden = false;
      return;
    }
    $("r-empty").hidden = true;
    index = Math.max(0, Math.min(index, queue.length - 1));
    const item = queue[index];
    view.hidden = false;
    $("r-ref").src = `/img/reference/${item.connector}.png`;
    $("r-crop").src = `/img/crop/${item.result_id}/${item.connector}.png`;
    $("r-heat").src = `/img/heatmap/${item.result_id}/${item.connector}.png`;
    $("r-pill").className = `pill ${item.evaluation.toLowerCase()}`;
    $("r-pill").textContent = item.evaluation;
    $("r-conn").textContent = item.connector;
    $("r-drift").hidden = !item.drift;
    $("r-board").textContent = item.part_id || item.result_id;
    $("r-board").href = `/board/${item.result_id}#c-${item.connector}`;
    $("r-time").textContent = `${item.created_at.slice(0, 19).replace("T", " ")} UTC`;
    const ratio = item.threshold ? item.score / item.threshold : 0;
    $("r-fill").style.width = `${Math.min(ratio * 50, 100)}%`;
    $("r-fill").className = `fill ${ratio >= 1 ? "over" : ratio >= 0.8 ? "near" : "under"}`;
    $("r-score").innerHTML = "";
    const bold = document.createElement("b");
    bold.textContent = item.score === null ? "no score" : item.score.toFixed(2);
    $("r-score").append(bold, ` / threshold ${item.threshold ? item.threshold.toFixed(2) : "—"}`);
    $("r-version").textContent = item.version || "—";
    $("r-pos").textContent = `${index + 1} of ${queue.length}${total > queue.length ? ` shown (${total} in all)` : ""}`;
  }

  async function confirm(label, wholeBoard) {
    if (busy || !queue.length) return;
    busy = true;
    const item = queue[index];
    const body = { result_id: item.result_id, label };
    if (!wholeBoard) body.connector = item.connector;
    try {
      const reply = await postJson("/api/confirm", body);
      const name = item.part_id || item.result_id;
      const text = `${name}: ${reply.connectors.join(", ")} ${label}`;
      toast(`${text} confirmed · U to undo`);
      const done = new Set(reply.connectors.map((c) => `${item.result_id}/${c}`));
      const removed = [];
      for (let i = queue.length - 1; i >= 0; i -= 1) {
        if (done.has(key(queue[i]))) removed.unshift({ at: i, item: queue.splice(i, 1)[0] });
      }
      total = Math.max(0, total - removed.length);
      changes += 1;
      undone.push({ reply, removed, text });
      show();
    } catch (error) {
      toast(error.message, true);
    } finally {
      busy = false;
    }
  }

  async function undo() {
    if (busy || !undone.length) return;
    busy = true;
    const last = undone[undone.length - 1];
    const { result_id, connectors, label } = last.reply;
    try {
      await postJson("/api/confirm/undo", { result_id, connectors, label });
      changes += 1;
      undone.pop();
      for (const { at, item } of last.removed) {
        if (!queue.some((q) => key(q) === key(item))) queue.splice(Math.min(at, queue.length), 0, item);
      }
      total += last.removed.length;
      if (last.removed.length) index = queue.findIndex((q) => key(q) === key(last.removed[0].item));
      toast(`Taken back: ${last.text}`);
      show();
    } catch (error) {
      toast(error.message, true);
    } finally {
      busy = false;
    }
  }

  function move(step) {
    index = (index + step + queue.length) % Math.max(queue.length, 1);
    show();
  }

  async function refresh() {
    const asked = changes;
    try {
      const response = await fetch("/api/review", { credentials: "same-origin" });
      const fresh = response.ok ? await response.json() : null;
      if (fresh && !busy && asked === changes) {
        const current = queue.length ? key(queue[index]) : null;
        queue = fresh.items;
        total = fresh.total;
        const found = current === null ? -1 : queue.findIndex((q) => key(q) === current);
        if (found >= 0) index = found;
        show();
      }
    } catch (_) { /* the next poll tries again */ }
    setTimeout(refresh, POLL_MS);
  }

  $("b-ok").addEventListener("click", () => confirm("OK", false));
  $("b-ko").addEventListener("click", () => confirm("KO", false));
  $("b-board").addEventListener("click", () => confirm("OK", true));
  $("b-skip").addEventListener("click", () => move(1));
  $("b-back").addEventListener("click", () => move(-1));
  $("b-undo").addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.altKey) return;
    const pressed = event.key.toLowerCase();
    if (event.ctrlKey || event.metaKey) {
      if (pressed === "z") { event.preventDefault(); undo(); }
      return;
    }
    const actions = {
      o: () => confirm("OK", false),
      k: () => confirm("KO", false),
      b: () => confirm("OK", true),
      u: undo,
      n: () => move(1),
      arrowright: () => move(1),
      p: () => move(-1),
      arrowleft: () => move(-1),
    };
    if (actions[pressed]) {
      event.preventDefault();
      actions[pressed]();
    }
  });
  show();
  setTimeout(refresh, POLL_MS);
})();
