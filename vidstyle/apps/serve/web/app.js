// vidstyle live --serve: the camera goes to the server over WebRTC, the stylized video comes back.
// With ?probe=1 the camera is a canvas that switches between two pictures, and the page measures
// how long each switch takes to come back (window.vidstyleProbe); see vidstyle/serve_probe.py.
"use strict";

const $ = (id) => document.getElementById(id);
const probe = new URLSearchParams(location.search).has("probe");
const shown = { frames: 0, since: performance.now(), fps: 0 };
let viewer = null;
let serverStats = null;
let skipped = 0;  // share of camera frames the server had no time for, between its last two reports

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function postJSON(url, body) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" },
                                      body: typeof body === "string" ? body : JSON.stringify(body) });
  const reply = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(reply.error || `HTTP ${response.status}`);
  return reply;
}

async function camera() {
  if (probe) return probeCamera();
  if (!navigator.mediaDevices) throw new Error("the camera needs https or localhost");
  return navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
}

function waitForIce(pc) {
  // One round of signalling: the offer goes out with every candidate in it.
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
}

async function connect(stream) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const channel = pc.createDataChannel("stats");
  channel.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.error) status(`server: ${message.error}`, true);
    else {
      if (serverStats && message.received > serverStats.received) {
        skipped = 1 - (message.delivered - serverStats.delivered) / (message.received - serverStats.received);
      }
      serverStats = window.vidstyleServerStats = message;
    }
  };
  const transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv", streams: [stream] });
  pc.ontrack = (event) => {
    // Show each frame as soon as it is decoded instead of buffering for smoothness.
    if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
    if ("playoutDelayHint" in event.receiver) event.receiver.playoutDelayHint = 0;
    $("remote").srcObject = new MediaStream([event.track]);
  };
  pc.onconnectionstatechange = () => {
    if (pc.connectionState === "failed" || pc.connectionState === "closed") status(`connection ${pc.connectionState}`, true);
  };
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  const answer = await postJSON("offer", { sdp: pc.localDescription.sdp, type: pc.localDescription.type });
  viewer = answer.viewer;
  await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
  try {
    // A lower resolution would restart the server's pipeline for the new size; drop frames instead.
    const parameters = transceiver.sender.getParameters();
    parameters.degradationPreference = "maintain-resolution";
    await transceiver.sender.setParameters(parameters);
  } catch (error) { /* not every browser lets a page choose */ }
  window.addEventListener("pagehide", () => pc.close());
  window.vidstylePeer = pc;
  return pc;
}

async function loadStyles() {
  const styles = await (await fetch("styles")).json();
  const select = $("style");
  for (const index of styles.builtins) select.add(new Option(`${index} ${styles.names[index]}`, String(index)));
  select.add(new Option("upload a picture…", "upload"));
  // The same choices as pictures: a click picks the style as the list would.
  for (const index of styles.builtins) {
    const button = document.createElement("button");
    button.dataset.style = String(index);
    button.title = `${index} ${styles.names[index]}`;
    const img = new Image(64, 48);
    img.src = styles.thumbnails[index];
    img.alt = button.title;
    button.append(img);
    button.onclick = () => {
      if (select.disabled || select.value === button.dataset.style) return;
      select.value = button.dataset.style;
      select.onchange();
    };
    $("thumbs").append(button);
  }
  const plain = styles.default !== null && styles.builtins.includes(Number(styles.default));
  if (!plain) {
    // The server starts viewers on a mix or a picture: name it, but it cannot be chosen again.
    const start = new Option(styles.default === null ? "the server's picture" : `style ${styles.default}`, "start");
    start.disabled = true;
    select.add(start, 0);
  }
  select.value = plain ? styles.default : "start";
  let current = select.value;
  select.onchange = async () => {
    if (select.value === "upload") {
      $("picture").value = "";
      $("picture").click();
      select.value = current;  // until a picture is accepted
      return;
    }
    if (await choose(() => postJSON(`viewers/${viewer}/style`, { style: Number(select.value) }))) {
      current = select.value;
    } else {
      select.value = current;
    }
    markThumbnail(current);
  };
  markThumbnail(select.value);
  $("picture").onchange = async () => {
    const file = $("picture").files[0];
    if (!file) return;
    if (file.size > styles.max_picture) {
      status(`the picture is larger than ${Math.floor(styles.max_picture / 2 ** 20)} MB`, true);
      return;
    }
    const accepted = await choose(async () => {
      // The server takes a picture only with a picture's type: one another site's page could not send.
      const type = file.type.startsWith("image/") ? file.type : "application/octet-stream";
      const response = await fetch(`viewers/${viewer}/picture`, { method: "POST", headers: { "Content-Type": type },
                                                                  body: file });
      const reply = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
      if (!response.ok) throw new Error(reply.error);
      return reply;
    });
    if (accepted) {
      let mine = select.querySelector('option[value="picture"]');
      if (!mine) {
        mine = new Option("your picture", "picture");
        mine.disabled = true;  // shown while in use; "upload a picture…" picks another
        select.add(mine, select.options.length - 1);
      }
      select.value = current = "picture";
      markThumbnail(current);
    }
  };
}

function markThumbnail(value) {
  for (const button of $("thumbs").children) button.setAttribute("aria-pressed", String(button.dataset.style === value));
}

async function choose(request) {
  status("switching style…");
  $("style").disabled = true;
  for (const button of $("thumbs").children) button.disabled = true;
  try {
    const reply = await request();
    status(`style ${reply.style}`);
    return true;
  } catch (error) {
    status(error.message, true);
    return false;
  } finally {
    $("style").disabled = false;
    for (const button of $("thumbs").children) button.disabled = false;
  }
}

function watchRemote() {
  setInterval(readout, 1000);
  const video = $("remote");
  if (!("requestVideoFrameCallback" in video)) return;  // no per-frame callback: no "shown" fps, no probe
  const onFrame = (now, metadata) => {
    shown.frames += 1;
    if (now - shown.since >= 1000) {
      shown.fps = (shown.frames * 1000) / (now - shown.since);
      shown.frames = 0;
      shown.since = now;
    }
    if (probe) probeFrame(video, metadata);
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function readout() {
  const parts = [`shown ${shown.fps.toFixed(1)} fps`];
  if (serverStats) {
    const at = serverStats.keyframe_size
      ? `keyframes at ${serverStats.keyframe_size} ${serverStats.keyframe_fps}/s, fill at ${serverStats.size}, ` +
        `${(100 * serverStats.recomputed).toFixed(0)}% recomputed per frame`
      : `at ${serverStats.size}`;
    parts.push(`server ${serverStats.fps} fps ${at}, arrival→send ${serverStats.latency_ms.p50} ms (p95 ` +
               `${serverStats.latency_ms.p95}), ${Math.max(0, 100 * skipped).toFixed(0)}% of camera frames skipped`);
  }
  const p = window.vidstyleProbe;
  if (p && p.samples.length) {
    const sorted = [...p.samples].sort((a, b) => a - b);
    parts.push(`round trip p50 ${sorted[Math.floor(sorted.length / 2)].toFixed(0)} ms over ${sorted.length} switches`);
  }
  $("readout").textContent = parts.join(" · ");
}

// -- probe mode: a canvas camera that switches between two pictures ------------------------------
//
// The canvas alternates between a dark and a bright textured picture at random intervals
// (0.4-0.8 s). Instance normalisation in the style network removes much of a plain brightness
// change, so the two pictures also differ in structure, and the returned frames are classified by
// their distance to the two stylized pictures as first seen (calibration): a switch's latency is
// from drawing the new picture to the expected display time of the first returned frame nearer the
// new picture's stylization than the old one's, i.e. past the midpoint.

const PROBE_W = 320, PROBE_H = 240, THUMB_W = 32, THUMB_H = 24, HOLD_MS = 1500;

function probePattern(bright) {
  const canvas = document.createElement("canvas");
  canvas.width = PROBE_W + 64;
  canvas.height = PROBE_H;
  const ctx = canvas.getContext("2d");
  let seed = bright ? 7 : 11;
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  ctx.fillStyle = bright ? "rgb(225,225,215)" : "rgb(25,25,35)";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < 160; i++) {
    const level = bright ? 150 + 90 * random() : 10 + 80 * random();
    ctx.fillStyle = `rgb(${level},${level * (0.8 + 0.4 * random())},${level * (0.8 + 0.4 * random())})`;
    if (bright) ctx.fillRect(random() * canvas.width, 0, 2 + 8 * random(), canvas.height);  // stripes
    else {
      ctx.beginPath();
      ctx.arc(random() * canvas.width, random() * canvas.height, 4 + 20 * random(), 0, 2 * Math.PI);
      ctx.fill();  // blobs
    }
  }
  return canvas;
}

function probeCamera() {
  const canvas = document.createElement("canvas");
  canvas.width = PROBE_W;
  canvas.height = PROBE_H;
  const ctx = canvas.getContext("2d");
  const pictures = [probePattern(false), probePattern(true)];
  const p = window.vidstyleProbe = {
    phase: "calibrate", level: 0, switchedAt: performance.now(), pending: null, refs: [null, null],
    sums: [null, null], counts: [0, 0], samples: [], missed: 0, frames: 0, presented: null, started: null,
    separation: null,
  };
  let shift = 0, last = 0;
  const draw = (now) => {
    if (now - last >= 30) {  // about the 30 fps captureStream asks for
      last = now;
      if (p.phase === "calibrate" && now - p.switchedAt >= HOLD_MS) {
        if (p.level === 0) switchTo(1, now);
        else finishCalibration(now);
      } else if (p.phase === "measure" && now >= p.nextSwitch) {
        if (p.pending) p.missed += 1;
        switchTo(1 - p.level, now);
        p.pending = { level: p.level, at: now };
        p.nextSwitch = now + 400 + 400 * Math.random();
      }
      shift = (shift + 1) % 64;  // a slow pan: a camera's picture is never still
      ctx.drawImage(pictures[p.level], -shift, 0);
    }
    requestAnimationFrame(draw);
  };
  const switchTo = (level, now) => { p.level = level; p.switchedAt = now; };
  const finishCalibration = (now) => {
    if (!p.counts[0] || !p.counts[1]) {  // nothing came back yet: hold each picture again
      p.sums = [null, null]; p.counts = [0, 0];
      switchTo(0, now);
      return;
    }
    p.refs = p.sums.map((sum, i) => sum.map((v) => v / p.counts[i]));
    p.separation = distance(p.refs[0], p.refs[1]);
    p.phase = "measure";
    p.started = now;
    p.nextSwitch = now + 400 + 400 * Math.random();
  };
  requestAnimationFrame(draw);
  return canvas.captureStream(30);
}

const thumbCanvas = document.createElement("canvas");
thumbCanvas.width = THUMB_W;
thumbCanvas.height = THUMB_H;
const thumbContext = thumbCanvas.getContext("2d", { willReadFrequently: true });

function thumbnail(video) {
  thumbContext.drawImage(video, 0, 0, THUMB_W, THUMB_H);
  const rgba = thumbContext.getImageData(0, 0, THUMB_W, THUMB_H).data;
  const out = new Float32Array(THUMB_W * THUMB_H);
  for (let i = 0; i < out.length; i++) out[i] = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
  return out;
}

function distance(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function probeFrame(video, metadata) {
  const p = window.vidstyleProbe;
  const thumb = thumbnail(video);
  if (p.phase === "calibrate") {
    // The last half of each hold: the switch has long come back and settled.
    if (metadata.expectedDisplayTime - p.switchedAt > HOLD_MS / 2) {
      const i = p.level;
      p.sums[i] = p.sums[i] ? p.sums[i].map((v, k) => v + thumb[k]) : Array.from(thumb);
      p.counts[i] += 1;
    }
    return;
  }
  p.frames += 1;
  if (p.presented === null) p.presented = { first: metadata.presentedFrames, at: metadata.expectedDisplayTime };
  p.presented.last = metadata.presentedFrames;
  p.presented.until = metadata.expectedDisplayTime;
  if (p.pending) {
    const target = p.pending.level;
    if (distance(thumb, p.refs[target]) < distance(thumb, p.refs[1 - target])) {
      p.samples.push(metadata.expectedDisplayTime - p.pending.at);
      p.pending = null;
    }
  }
}

async function main() {
  try {
    const stream = await camera();
    $("local").srcObject = stream;
    await loadStyles();
    watchRemote();
    await connect(stream);
    $("style").disabled = false;
    status("connected");
  } catch (error) {
    status(error.message || String(error), true);
  }
}

main();
