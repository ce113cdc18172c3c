// FaceReko web app: local times, confirmations, live updates from the server's event feed, and
// face sign-in from the browser's camera.
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

// Face sign-in: the camera's preview, a short burst of JPEG frames from a canvas, posted with the
// sign-in form's token and the user name typed above.
function faceSignIn() {
  const section = document.getElementById("face-sign-in");
  if (!section) return;
  const button = document.getElementById("face-start");
  const preview = document.getElementById("face-preview");
  const status = document.getElementById("face-status");
  const form = document.querySelector("form[action='/login']");
  if (!navigator.mediaDevices?.getUserMedia) {
    status.textContent = "This browser gives pages no camera here (it needs https).";
    button.disabled = true;
    return;
  }
  const frame = (canvas) => new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
  const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  button.addEventListener("click", async () => {
    const username = form.querySelector("[name=username]").value.trim();
    if (!username) {
      status.textContent = "Type your username first.";
      return;
    }
    button.disabled = true;
    let stream;
    try {
      status.textContent = "Starting the camera…";
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, facingMode: "user" } });
      preview.srcObject = stream;
      preview.hidden = false;
      await preview.play();
      while (!preview.videoWidth) await pause(50);
      status.textContent = section.dataset.ask;
      await pause(600);
      const canvas = document.createElement("canvas");
      canvas.width = preview.videoWidth;
      canvas.height = preview.videoHeight;
      const body = new FormData();
      body.append("csrf", form.querySelector("[name=csrf]").value);
      body.append("username", username);
      for (let i = 0; i < Number(section.dataset.frames); i++) {
        canvas.getContext("2d").drawImage(preview, 0, 0);
        body.append("frame", await frame(canvas), `frame-${i}.jpg`);
        await pause(Number(section.dataset.pace));
      }
      status.textContent = "Checking…";
      const answer = await fetch("/login/face", { method: "POST", body, credentials: "same-origin" });
      const reply = await answer.json().catch(() => ({ error: `Sign-in failed (${answer.status}).` }));
      if (answer.ok && reply.redirect) {
        location.assign(reply.redirect);
        return;
      }
      status.textContent = reply.error;
    } catch (e) {
      status.textContent = `The camera cannot be used: ${e.message}`;
    } finally {
      for (const track of stream?.getTracks() ?? []) track.stop();
      preview.hidden = true;
      button.disabled = false;
    }
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
  faceSignIn();
});

// ---- Passkeys (WebAuthn): the browser's half. The server keeps each ceremony's state and
// answers in JSON; binary values travel as base64url.
const base64url = {
  decode(text) {
    const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(binary, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buffer) {
    const binary = String.fromCharCode(...new Uint8Array(buffer));
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

function passkeysUsable() {
  return window.isSecureContext && "PublicKeyCredential" in window;
}

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || `The server answered ${response.status}.`);
  return answer;
}

/// Asks the browser for a passkey's answer to the options the server sent from `optionsUrl`.
async function passkeyAnswer(optionsUrl, csrf) {
  const { ceremony, options } = await postJSON(optionsUrl, { csrf });
  const publicKey = options.publicKey;
  publicKey.challenge = base64url.decode(publicKey.challenge);
  for (const allowed of publicKey.allowCredentials || []) allowed.id = base64url.decode(allowed.id);
  const credential = await navigator.credentials.get({ publicKey });
  const response = credential.response;
  return {
    ceremony,
    credential: credentialJSON(credential, {
      authenticatorData: base64url.encode(response.authenticatorData),
      signature: base64url.encode(response.signature),
      userHandle: response.userHandle ? base64url.encode(response.userHandle) : null,
    }),
  };
}

/// A new or used credential as the server reads it, with `response`'s own fields.
function credentialJSON(credential, response) {
  return {
    id: credential.id,
    rawId: base64url.encode(credential.rawId),
    type: credential.type,
    extensions: credential.getClientExtensionResults(),
    response: { clientDataJSON: base64url.encode(credential.response.clientDataJSON), ...response },
  };
}

async function registerPasskey(form) {
  const csrf = form.dataset.csrf;
  const name = form.querySelector("input[name=name]").value;
  const password = form.querySelector("input[name=password]").value;
  const { ceremony, options } = await postJSON("/account/passkeys/options", { csrf, name, password });
  const publicKey = options.publicKey;
  publicKey.challenge = base64url.decode(publicKey.challenge);
  publicKey.user.id = base64url.decode(publicKey.user.id);
  for (const excluded of publicKey.excludeCredentials || []) excluded.id = base64url.decode(excluded.id);
  const credential = await navigator.credentials.create({ publicKey });
  await postJSON("/account/passkeys", {
    csrf,
    ceremony,
    credential: credentialJSON(credential, {
      attestationObject: base64url.encode(credential.response.attestationObject),
    }),
  });
  location.reload();
}

/// Runs `action` for `control` (a button or form), saying what went wrong beside it.
function passkeyControl(control, event, action) {
  const status = control.closest("div, form").querySelector("[data-passkey-status]");
  if (!passkeysUsable()) {
    if (status) status.textContent = "This browser cannot use passkeys here: they need HTTPS (or localhost).";
    control.querySelector("button")?.setAttribute("disabled", "");
    if (control.tagName === "BUTTON") control.disabled = true;
    return;
  }
  control.addEventListener(event, (e) => {
    e.preventDefault();
    if (status) status.textContent = "Waiting for your passkey…";
    action().catch((error) => {
      if (status) status.textContent = error.name === "NotAllowedError" ? "Cancelled, or no passkey here." : error.message;
    });
  });
}

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-passkey-sign-in]")) {
    passkeyControl(button, "click", async () => {
      const answer = await passkeyAnswer("/login/passkey/options", button.dataset.csrf);
      const { redirect } = await postJSON("/login/passkey", { csrf: button.dataset.csrf, ...answer });
      location.assign(redirect);
    });
  }
  for (const button of document.querySelectorAll("[data-passkey-check]")) {
    passkeyControl(button, "click", async () => {
      const answer = await passkeyAnswer("/confirm/passkey/options", button.dataset.csrf);
      const form = document.getElementById("step-up-form");
      form.elements.step_up_ceremony.value = answer.ceremony;
      form.elements.step_up_passkey.value = JSON.stringify(answer.credential);
      form.submit();
    });
  }
  for (const form of document.querySelectorAll("form[data-passkey-register]")) {
    passkeyControl(form, "submit", () => registerPasskey(form));
  }
});
