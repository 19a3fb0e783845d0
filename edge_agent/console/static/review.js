// Review queue: one connector at a time; O = OK, K = KO, B = whole board OK, arrows to move.
"use strict";

(function () {
  const queue = JSON.parse(document.getElementById("queue").textContent);
  const view = document.getElementById("review");
  const $ = (id) => document.getElementById(id);
  let index = 0;
  let busy = false;

  function show() {
    $("remaining").textContent = queue.length;
    if (!queue.length) {
      view.hidden = true;
      $("r-empty").hidden = false;
      return;
    }
    index = Math.max(0, Math.min(index, queue.length - 1));
    const item = queue[index];
    view.hidden = false;
    $("r-crop").src = `/img/crop/${item.result_id}/${item.connector}.png`;
    $("r-heat").src = `/img/heatmap/${item.result_id}/${item.connector}.png`;
    $("r-pill").className = `pill ${item.evaluation.toLowerCase()}`;
    $("r-pill").textContent = item.evaluation;
    $("r-conn").textContent = item.connector;
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
    $("r-pos").textContent = `${index + 1} of ${queue.length}`;
  }

  async function confirm(label, wholeBoard) {
    if (busy || !queue.length) return;
    busy = true;
    const item = queue[index];
    const body = { result_id: item.result_id, label };
    if (!wholeBoard) body.connector = item.connector;
    try {
      const reply = await postJson("/api/confirm", body);
      toast(`${item.part_id || item.result_id}: ${reply.connectors.join(", ")} confirmed ${label}`);
      const done = new Set(reply.connectors.map((c) => `${item.result_id}/${c}`));
      for (let i = queue.length - 1; i >= 0; i -= 1) {
        if (done.has(`${queue[i].result_id}/${queue[i].connector}`)) queue.splice(i, 1);
      }
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

  $("b-ok").addEventListener("click", () => confirm("OK", false));
  $("b-ko").addEventListener("click", () => confirm("KO", false));
  $("b-board").addEventListener("click", () => confirm("OK", true));
  $("b-skip").addEventListener("click", () => move(1));
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey) return;
    const key = event.key.toLowerCase();
    const actions = {
      o: () => confirm("OK", false),
      k: () => confirm("KO", false),
      b: () => confirm("OK", true),
      n: () => move(1),
      arrowright: () => move(1),
      p: () => move(-1),
      arrowleft: () => move(-1),
    };
    if (actions[key]) {
      event.preventDefault();
      actions[key]();
    }
  });
  show();
})();
