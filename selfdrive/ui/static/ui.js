// roadpilot onroad UI: draws what uid sends. No geometry here: the overlay arrives projected into camera
// pixels (selfdrive/ui/overlay.py), and the canvas is sized in camera pixels, so CSS only scales the whole.
"use strict";

const FRAME_MAGIC = "RPF1";
const FRAME_HEADER_BYTES = 12;       // magic, frame id (u32), camera width, height (u16), little endian
const SILENT_MS = 3000;              // no message for this long on an open socket: treat it as dead
const PING_MS = 1000;
const MAX_BACKOFF_MS = 2000;
const SLOW_MODEL_MS = 150;

const canvas = document.getElementById("view");
const ctx = canvas.getContext("2d");
const $ = (id) => document.getElementById(id);

// Everything the page knows; exposed (read-only by convention) for tests and the browser console.
const ui = window.rpUi = {
  connected: false, connects: 0, frames: 0, states: 0, droppedFrames: 0, lastFrameId: null,
  state: null, rttMs: null, lastMsgAt: 0, frameWidth: 0, frameHeight: 0,
};
let image = null;          // the newest decoded frame (ImageBitmap)
let decoding = false;      // a JPEG is being decoded; a newer one waits in `pendingFrame` (latest only)
let pendingFrame = null;
let drawQueued = false;
let backoff = 250;
let socket = null;

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  socket = ws;
  ws.binaryType = "arraybuffer";
  ws.onopen = () => { ui.connected = true; ui.connects += 1; ui.lastMsgAt = performance.now(); backoff = 250;
    ui.lastFrameId = null; showConnection(); };
  ws.onmessage = (ev) => {
    ui.lastMsgAt = performance.now();
    if (typeof ev.data === "string") onText(ev.data); else onFrame(ev.data);
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    ui.connected = false; showConnection();
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  };
  ws.onerror = () => ws.close();
}

function showConnection() {
  const el = $("conn");
  el.className = ui.connected ? "ok" : "";
  el.textContent = ui.connected ? "" : "reconnecting…";
}

setInterval(() => {  // keep-alive: measure the link, and notice a socket that went silent without closing
  if (!socket || socket.readyState !== WebSocket.OPEN) return;
  if (performance.now() - ui.lastMsgAt > SILENT_MS) { socket.close(); return; }
  socket.send(JSON.stringify({ type: "ping", t: performance.now() }));
}, PING_MS);

function onText(text) {
  let msg;
  try { msg = JSON.parse(text); } catch (e) { return; }
  if (msg.type === "pong" && typeof msg.t === "number") ui.rttMs = performance.now() - msg.t;
  if (msg.type !== "state") return;
  ui.state = msg; ui.states += 1;
  renderHud(msg);
  requestDraw();
}

function onFrame(buf) {
  if (buf.byteLength <= FRAME_HEADER_BYTES) return;
  const dv = new DataView(buf);
  const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
  if (magic !== FRAME_MAGIC) return;
  const id = dv.getUint32(4, true);
  if (ui.lastFrameId !== null && id > ui.lastFrameId + 1) ui.droppedFrames += id - ui.lastFrameId - 1;
  ui.lastFrameId = id;
  ui.frameWidth = dv.getUint16(8, true); ui.frameHeight = dv.getUint16(10, true);
  if (decoding) { pendingFrame = buf; return; }
  decode(buf);
}

function decode(buf) {
  decoding = true;
  createImageBitmap(new Blob([new Uint8Array(buf, FRAME_HEADER_BYTES)], { type: "image/jpeg" }))
    .then((bmp) => { if (image) image.close(); image = bmp; ui.frames += 1; requestDraw(); })
    .catch(() => {})  // a bad JPEG: keep the previous picture
    .finally(() => {
      decoding = false;
      if (pendingFrame) { const next = pendingFrame; pendingFrame = null; decode(next); }
    });
}

function requestDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => { drawQueued = false; draw(); });
}

function fillPolygon(pts, style) {
  if (!pts || pts.length < 3) return;
  ctx.beginPath();
  ctx.moveTo(pts[0][0], pts[0][1]);
  for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
  ctx.closePath();
  ctx.fillStyle = style;
  ctx.fill();
}

function pathColour(sd) {
  if (!sd || !sd.enabled) return "rgba(255, 255, 255, 0.35)";
  if (sd.state === "overriding") return "rgba(145, 160, 175, 0.5)";
  if (sd.state === "softDisabling") return "rgba(218, 111, 37, 0.55)";
  return "rgba(23, 230, 110, 0.5)";
}

function drawLead(lead, w) {
  const s = Math.max(12, Math.min(60, 1500 / Math.max(lead.dist, 1)));  // nearer: bigger
  ctx.beginPath();
  ctx.moveTo(lead.u, lead.v);
  ctx.lineTo(lead.u - s, lead.v + s * 0.8);
  ctx.lineTo(lead.u + s, lead.v + s * 0.8);
  ctx.closePath();
  ctx.fillStyle = "rgba(201, 34, 49, 0.9)";
  ctx.fill();
  ctx.font = `bold ${Math.round(w / 40)}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.lineWidth = 4; ctx.strokeStyle = "rgba(0, 0, 0, 0.7)";
  const label = `${Math.round(lead.dist)} m`;
  ctx.strokeText(label, lead.u, lead.v + s * 0.8 + w / 36);
  ctx.fillStyle = "#fff";
  ctx.fillText(label, lead.u, lead.v + s * 0.8 + w / 36);
}

function draw() {
  const st = ui.state;
  const w = ui.frameWidth || (st && st.overlay && st.overlay.width) || canvas.width;
  const h = ui.frameHeight || (st && st.overlay && st.overlay.height) || canvas.height;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, w, h);
  if (image) ctx.drawImage(image, 0, 0, w, h);
  const ov = st && st.overlay;
  if (!ov) return;
  ctx.save();
  ctx.scale(w / ov.width, h / ov.height);  // overlay pixels are the camera's; the picture may be another size
  for (const lane of ov.lanes) fillPolygon(lane.pts, `rgba(255, 255, 255, ${lane.prob.toFixed(2)})`);
  for (const edge of ov.edges) fillPolygon(edge.pts, "rgba(255, 60, 60, 0.8)");
  fillPolygon(ov.path, pathColour(st.selfdrive));
  if (ov.lead) drawLead(ov.lead, ov.width);
  ctx.restore();
}

const fmt = (v, unit, digits = 0) => (v === null || v === undefined ? "–" : `${v.toFixed(digits)}${unit}`);

function renderHud(st) {
  const sd = st.selfdrive;
  $("stage").className = `state-${sd ? sd.state : "none"}`;
  $("speed-value").textContent = st.car ? Math.round(st.car.speedKph) : "–";
  const set = st.plan && st.plan.setSpeedKph;
  $("set-value").textContent = set && set > 0 && set < 255 ? Math.round(set) : "–";
  $("fcw").hidden = !(st.plan && st.plan.fcw);

  const alert = $("alert");
  if (!sd) {
    alert.hidden = false; alert.className = "alert-critical";
    $("alert1").textContent = "No system state"; $("alert2").textContent = "selfdrived is not running";
  } else if (sd.alertSize === "none" || !(sd.alertText1 || sd.alertText2)) {
    alert.hidden = true;
  } else {
    alert.hidden = false;
    alert.className = `alert-${sd.alertStatus}${sd.alertSize === "full" ? " alert-full" : ""}`;
    $("alert1").textContent = sd.alertText1; $("alert2").textContent = sd.alertText2;
  }

  const s = st.status, dev = st.device;
  const lag = $("st-model");
  lag.textContent = st.alive.modelV2 ? `model lag: ${fmt(s.modelLagMs, " ms")}, drops ${fmt(s.modelFrameDropPerc, "%", 1)}`
    : "model: not running";
  lag.className = !st.alive.modelV2 || (s.modelLagMs !== null && s.modelLagMs > SLOW_MODEL_MS) ? "warn" : "";
  $("st-dropped").textContent = `dropped frames: ${ui.droppedFrames}` + (st.alive.roadCameraState ? "" : " (no camera)");
  $("st-dropped").className = st.alive.roadCameraState ? "" : "warn";
  $("st-temp").textContent = `CPU: ${fmt(dev && dev.cpuTempC, " °C")}`;
  $("st-temp").className = dev && dev.thermalStatus !== "green" ? "warn" : "";
  $("st-disk").textContent = `disk free: ${fmt(dev && dev.freeSpacePercent, "%")}`;
  $("st-link").textContent = `link: ${fmt(ui.rttMs, " ms")}`;
  $("st-car").textContent = st.carIdentity || "car: not identified yet";
  $("st-car").className = !st.carIdentity || st.carIdentity.includes("dashcam") ? "warn" : "";
  $("st-steer").textContent = st.steering || "steering: not learnt (torqued silent)";
}

connect();
