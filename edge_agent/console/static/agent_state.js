// Every page: the agent's state (live / not ready and why / unreachable since ...) and its drift
// states, asked of the console every POLL_MS: a badge in the corner always, and the banner under
// the header while the agent is not live or a drift state is not ok (alarms and warnings apart).
"use strict";

(function () {
  const POLL_MS = 1000;
  const banner = document.getElementById("agent-banner");
  if (!banner) return;
  const badge = document.createElement("div");
  badge.id = "agent-badge";
  badge.setAttribute("role", "status");
  document.body.appendChild(badge);
  const HEADLINES = {
    not_ready: "Agent not ready",
    unreachable: "Agent unreachable",
    unwatched: "Agent not watched",
  };

  function utcTime(iso) {
    return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC` : "";
  }

  function item(list, text, remedy) {
    const li = document.createElement("li");
    li.textContent = text;
    if (remedy) {
      const hint = document.createElement("span");
      hint.className = "remedy";
      hint.textContent = ` → ${remedy}`;
      li.appendChild(hint);
    }
    list.appendChild(li);
  }

  function section(title, className) {
    const part = document.createElement("div");
    part.className = className;
    const head = document.createElement("b");
    head.textContent = title;
    const list = document.createElement("ul");
    part.append(head, list);
    banner.appendChild(part);
    return list;
  }

  function show(agent) {
    banner.replaceChildren();
    document.body.dataset.agentState = agent.state;
    if (agent.state !== "live") {
      const list = section(`${HEADLINES[agent.state] || agent.state} since ${utcTime(agent.since)}`, "down");
      if (agent.state === "unreachable") {
        item(list, `${agent.error}: no board is inspected`, "start the agent (systemctl start edge-inspect) and see its log (journalctl -u edge-inspect)");
      } else if (agent.error) {
        item(list, agent.error);
      }
      (agent.reasons || []).forEach((r) => item(list, r.reason, r.remedy));
    }
    ["alarm", "warning"].forEach((level) => {
      const drifting = (agent.drift || []).filter((d) => d.state === level);
      if (!drifting.length) return;
      const list = section(`Drift ${level}`, `drift ${level}`);
      drifting.forEach((d) => {
        const named = d.reason.startsWith(d.name) ? d.reason : `${d.name}: ${d.reason || level}`;
        item(list, `${named}${d.since ? ` · since ${utcTime(d.since)}` : ""}`);
      });
    });
    banner.hidden = !banner.children.length;
    const up = agent.state === "live";
    badge.className = up ? "live" : "down";
    badge.textContent = up ? "● agent live" : `● ${(HEADLINES[agent.state] || agent.state).toLowerCase()}`;
    badge.title = `checked ${utcTime(agent.checked_at)}`;
    const live = document.getElementById("live");
    if (live) {
      live.classList.toggle("down", !up);
      live.textContent = up ? "● live" : `○ not live: ${(HEADLINES[agent.state] || agent.state).toLowerCase()}`;
    }
  }

  function consoleDown() {
    banner.replaceChildren();
    item(section("Console not answering", "down"), "this page is not being updated", "reload the page; check edge-inspect-console");
    banner.hidden = false;
    document.body.dataset.agentState = "unknown";
    badge.className = "down";
    badge.textContent = "● console not answering";
  }

  async function poll() {
    try {
      const response = await fetch("/api/agent-state", { credentials: "same-origin", cache: "no-store" });
      if (response.ok && !response.redirected) show(await response.json());
    } catch (error) {
      if (error instanceof TypeError) consoleDown();
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
