// Set-up editor: connector boxes on the reference image, ROIs on crop previews, save, backups.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("setup-data").textContent);
  const canvas = document.getElementById("canvas");
  const list = document.querySelector("#list tbody");
  const NAME = new RegExp(data.id_pattern); // the schema's connector id rule
  const MIN = 8;
  let boxes = data.connectors.map((c) => ({ ...c, box: [...c.box] }));
  let selected = null;
  let drag = null;
  let baseSha = data.config_sha256; // the config.toml this page was built from

  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
  const byId = (id) => boxes.find((b) => b.id === id);

  function toReference(event) {
    const rect = canvas.getBoundingClientRect();
    return [
      clamp(Math.round(((event.clientX - rect.left) * data.width) / rect.width), 0, data.width),
      clamp(Math.round(((event.clientY - rect.top) * data.height) / rect.height), 0, data.height),
    ];
  }

  function freeName() {
    for (let n = 1; ; n += 1) if (!byId(`J${n}`)) return `J${n}`;
  }

  function percent(box) {
    const [x, y, w, h] = box;
    return `left:${(100 * x) / data.width}%;top:${(100 * y) / data.height}%;` +
      `width:${(100 * w) / data.width}%;height:${(100 * h) / data.height}%`;
  }

  function drawBoxes() {
    canvas.querySelectorAll(".box").forEach((el) => el.remove());
    for (const b of boxes) {
      const el = document.createElement("div");
      el.className = `box edit ${b.enabled ? "" : "off"} ${b.id === selected ? "selected" : ""}`;
      el.style.cssText = percent(b.box);
      el.dataset.id = b.id;
      const label = document.createElement("span");
      label.textContent = b.id;
      const handle = document.createElement("i");
      handle.className = "handle";
      el.append(label, handle);
      canvas.append(el);
    }
  }

  function drawList() {
    list.innerHTML = "";
    for (const b of boxes) {
      const row = document.createElement("tr");
      row.className = b.id === selected ? "selected" : "";
      const name = document.createElement("input");
      name.value = b.id;
      name.size = 6;
      name.setAttribute("aria-label", "connector name");
      name.addEventListener("change", () => {
        const wanted = name.value.trim();
        if (!NAME.test(wanted) || (wanted !== b.id && byId(wanted))) {
          toast(`"${wanted}" is not a free connector name (letters, digits, - and _)`, true);
          name.value = b.id;
          return;
        }
        if (selected === b.id) selected = wanted;
        b.id = wanted;
        render();
      });
      const coords = document.createElement("td");
      coords.className = "small mono";
      coords.textContent = b.box.join(", ");
      const on = document.createElement("input");
      on.type = "checkbox";
      on.checked = b.enabled;
      on.setAttribute("aria-label", `inspect ${b.id}`);
      on.addEventListener("change", () => { b.enabled = on.checked; render(); });
      const remove = document.createElement("button");
      remove.className = "link";
      remove.textContent = "remove";
      remove.addEventListener("click", () => {
        boxes = boxes.filter((x) => x !== b);
        if (selected === b.id) selected = null;
        render();
      });
      const cells = [name, coords, on, remove].map((child) => {
        if (child.tagName === "TD") return child;
        const td = document.createElement("td");
        td.append(child);
        return td;
      });
      row.append(...cells);
      row.addEventListener("click", (event) => {
        if (event.target.tagName !== "INPUT" && event.target.tagName !== "BUTTON") select(b.id);
      });
      list.append(row);
    }
  }

  function drawPreviews() {
    const card = document.getElementById("selected");
    const b = byId(selected);
    card.hidden = !b;
    if (!b) return;
    document.getElementById("sel-name").textContent = b.id;
    const holder = document.getElementById("previews");
    holder.innerHTML = "";
    for (const board of data.boards) {
      const frame = document.createElement("div");
      frame.className = "preview";
      frame.style.aspectRatio = `${b.box[2]} / ${b.box[3]}`;
      const img = document.createElement("img");
      img.src = `/img/preview/${board}.png?box=${b.box.join(",")}`;
      img.alt = `${b.id} cut from board ${board}`;
      img.draggable = false;
      frame.append(img);
      if (b.roi) {
        const roi = document.createElement("div");
        roi.className = "roi";
        const [x, y, w, h] = b.roi;
        roi.style.cssText = `left:${(100 * x) / b.box[2]}%;top:${(100 * y) / b.box[3]}%;` +
          `width:${(100 * w) / b.box[2]}%;height:${(100 * h) / b.box[3]}%`;
        frame.append(roi);
      }
      frame.addEventListener("pointerdown", (event) => startRoi(event, frame, b));
      holder.append(frame);
    }
  }

  function render() {
    drawBoxes();
    drawList();
    drawPreviews();
  }

  function select(id) {
    selected = id;
    render();
  }

  function startRoi(event, frame, b) {
    event.preventDefault();
    const rect = frame.getBoundingClientRect();
    const at = (e) => [
      clamp(Math.round(((e.clientX - rect.left) * b.box[2]) / rect.width), 0, b.box[2]),
      clamp(Math.round(((e.clientY - rect.top) * b.box[3]) / rect.height), 0, b.box[3]),
    ];
    const [x0, y0] = at(event);
    frame.setPointerCapture(event.pointerId);
    const moveRoi = (e) => {
      const [x1, y1] = at(e);
      b.roi = [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
      const roi = frame.querySelector(".roi") || frame.appendChild(document.createElement("div"));
      roi.className = "roi";
      roi.style.cssText = `left:${(100 * b.roi[0]) / b.box[2]}%;top:${(100 * b.roi[1]) / b.box[3]}%;` +
        `width:${(100 * b.roi[2]) / b.box[2]}%;height:${(100 * b.roi[3]) / b.box[3]}%`;
    };
    const end = () => {
      frame.removeEventListener("pointermove", moveRoi);
      frame.removeEventListener("pointerup", end);
      if (b.roi && (b.roi[2] < 2 || b.roi[3] < 2)) b.roi = null;
      drawPreviews();
    };
    frame.addEventListener("pointermove", moveRoi);
    frame.addEventListener("pointerup", end);
  }

  canvas.addEventListener("pointerdown", (event) => {
    event.preventDefault();
    const target = event.target.closest(".box");
    const point = toReference(event);
    if (target) {
      const b = byId(target.dataset.id);
      selected = b.id;
      drag = {
        b,
        mode: event.target.classList.contains("handle") ? "resize" : "move",
        start: point,
        box: [...b.box],
        roi: b.roi ? [...b.roi] : null,
      };
    } else {
      const b = { id: freeName(), box: [point[0], point[1], 0, 0], enabled: true, roi: null };
      drag = { b, mode: "draw", start: point, box: [...b.box], fresh: true };
    }
    canvas.setPointerCapture(event.pointerId);
  });

  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const [px, py] = toReference(event);
    const [sx, sy] = drag.start;
    const [x, y, w, h] = drag.box;
    const b = drag.b;
    if (drag.mode === "move") {
      b.box = [clamp(x + px - sx, 0, data.width - w), clamp(y + py - sy, 0, data.height - h), w, h];
    } else if (drag.mode === "resize") {
      b.box = [x, y, clamp(w + px - sx, MIN, data.width - x), clamp(h + py - sy, MIN, data.height - y)];
    } else {
      b.box = [Math.min(sx, px), Math.min(sy, py), Math.abs(px - sx), Math.abs(py - sy)];
      if (drag.fresh && b.box[2] >= MIN && b.box[3] >= MIN) {
        boxes.push(b);
        selected = b.id;
        drag.fresh = false;
      }
    }
    if (drag.mode === "resize" && drag.roi) {
      // the ROI keeps its place in the crop when the box is resized
      const [rx, ry, rw, rh] = drag.roi;
      const fx = b.box[2] / w;
      const fy = b.box[3] / h;
      b.roi = [Math.floor(rx * fx), Math.floor(ry * fy), Math.max(1, Math.floor(rw * fx)), Math.max(1, Math.floor(rh * fy))];
    }
    drawBoxes();
  });

  canvas.addEventListener("pointerup", () => {
    if (!drag) return;
    drag = null;
    render();
  });

  document.getElementById("roi-clear").addEventListener("click", () => {
    const b = byId(selected);
    if (b) { b.roi = null; drawPreviews(); }
  });

  document.getElementById("save").addEventListener("click", async () => {
    try {
      const reply = await postJson("/api/setup", { connectors: boxes, base_sha256: baseSha });
      saved(reply, `Saved ${reply.config}: ${reply.changes.join("; ")} (previous kept as ${reply.backup.split("/").pop()}); ${reply.note}`);
    } catch (error) {
      document.getElementById("retrain-offer").hidden = !error.message.includes("Save and retrain");
      toast(error.message, true);
    }
  });

  function showPending(pending) {
    document.getElementById("retrain-offer").hidden = true;
    document.getElementById("pending").hidden = !pending;
    document.getElementById("pending-text").textContent = pending ? pending.text : "";
    document.getElementById("retrain-cancel").hidden = !(pending && pending.pending);
  }

  document.getElementById("save-retrain").addEventListener("click", async () => {
    try {
      const reply = await postJson("/api/setup/retrain", { connectors: boxes, base_sha256: baseSha });
      showPending(reply.pending);
    } catch (error) {
      toast(error.message, true);
    }
  });

  document.getElementById("retrain-cancel").addEventListener("click", async () => {
    try {
      showPending((await postJson("/api/setup/retrain/cancel")).pending);
    } catch (error) {
      toast(error.message, true);
    }
  });

  function saved(reply, message) {
    boxes = reply.connectors;
    baseSha = reply.config_sha256;
    drawBackups(reply.backups);
    render();
    toast(message);
  }

  function drawBackups(backups) {
    const body = document.querySelector("#backups tbody");
    body.replaceChildren();
    for (const b of backups) {
      const row = body.insertRow();
      row.dataset.name = b.name;
      row.insertCell().textContent = b.saved_at;
      row.insertCell().textContent = b.by;
      row.insertCell().textContent = b.changes.join("; ");
      const button = document.createElement("button");
      button.className = "link restore";
      button.textContent = "Restore";
      button.title = "put back config.toml as it was before this save";
      button.addEventListener("click", async () => {
        try {
          const reply = await postJson("/api/setup/restore", { name: b.name, base_sha256: baseSha });
          saved(reply, `Restored ${reply.config} as it was before ${b.saved_at}; ${reply.note}`);
        } catch (error) {
          toast(error.message, true);
        }
      });
      row.insertCell().append(button);
    }
  }

  drawBackups(data.backups);

  render();
})();
