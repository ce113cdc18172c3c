// FaceReko web app: local times, confirmations, and live updates from the server's event feed.
"use strict";

function localTimes(root) {
  const thisYear = new Date().getFullYear();
  for (const el of root.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!Number.isNaN(at.getTime())) {
      const day = { month: "short", day: "numeric" };
      if (at.getFullYear() !== thisYear) day.year = "numeric";
      el.textContent = `${at.toLocaleDateString(undefined, day)}, ${at.toLocaleTimeString()}`;
      el.title = at.toString();
    }
  }
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el && text !== undefined) el.textContent = text;
}

function showStatus(status) {
  setText("armed-state", status.armed_text);
  setText("lock-state", status.lock_text);
  setText("busy-state", status.busy_text);
  setText("camera-state", status.camera_text);
  setText("reader-state", status.reader_text);
  setText("speaker-state", status.speaker_text);
  setText("backlog", status.backlog_text);
  const main = document.querySelector(".main-tile");
  if (main) main.dataset.armed = String(status.armed);
  for (const form of document.querySelectorAll("[data-show-when]")) {
    form.hidden = (form.dataset.showWhen === "armed") !== status.armed;
  }
  document.getElementById("lock-state")?.closest(".tile")?.classList.toggle("unlocked", status.unlocked);
  document.getElementById("camera-state")?.closest(".tile")?.classList.toggle("failing", !status.camera_ok);
  document.getElementById("reader-state")?.closest(".tile")?.classList.toggle("failing", !status.reader_ok);
  document.getElementById("speaker-state")?.closest(".tile")?.classList.toggle("failing", !status.speaker_ok);
}

async function reloadRows(body) {
  const response = await fetch(body.dataset.liveSrc, { credentials: "same-origin" });
  if (response.redirected || !response.ok) {
    // Signed out meanwhile: the full page shows why.
    if (response.redirected) location.reload();
    return;
  }
  const known = new Set([...body.querySelectorAll("tr[data-id]")].map((tr) => tr.dataset.id));
  body.innerHTML = await response.text();
  const total = response.headers.get("X-Total-Count");
  const counter = document.getElementById("history-total");
  if (total !== null && counter) counter.textContent = `${total} attempt${total === "1" ? "" : "s"}`;
  for (const tr of body.querySelectorAll("tr[data-id]")) {
    if (!known.has(tr.dataset.id)) tr.classList.add("fresh");
  }
  localTimes(body);
}

function connectLiveFeed() {
  const live = document.querySelectorAll("[data-live-src]");
  const statusPage = document.querySelector("[data-status-feed]");
  if (!live.length && !statusPage) return;
  const dot = document.querySelector(".live-dot");
  const feed = new EventSource("/events");
  feed.addEventListener("open", () => dot?.classList.add("connected"));
  feed.addEventListener("error", () => dot?.classList.remove("connected"));
  feed.addEventListener("status", (event) => showStatus(JSON.parse(event.data)));
  feed.addEventListener("attempt", () => {
    for (const body of live) reloadRows(body).catch(() => {});
  });
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  const offset = String(-new Date().getTimezoneOffset());
  for (const input of document.querySelectorAll("input[data-tz]")) input.value = offset;
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  for (const form of document.querySelectorAll("form[data-busy]")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button");
      if (button) {
        button.disabled = true;
        button.textContent = form.dataset.busy;
      }
    });
  }
  for (const link of document.querySelectorAll("a[data-back]")) {
    link.addEventListener("click", (event) => {
      if (history.length > 1) {
        event.preventDefault();
        history.back();
      }
    });
  }
  connectLiveFeed();
});
