// The Operator Platform console: one page over the platform's own APIs, with the caller's
// token (kept for this browser tab only). Everything shown is set as text, never as HTML.
"use strict";

const CAMARA = "/edge-application-management/v0.1alpha1";
const state = { token: sessionStorage.getItem("op-token"), timers: [], history: new Map(), logAbort: null, ws: null, pendingError: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function showError(msg) {
  const p = $("error");
  p.textContent = msg;
  p.hidden = !msg;
}

function claims() {
  try {
    return JSON.parse(atob(state.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch (_) {
    return {};
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401) {
    logout();
    throw new Error("your session ended; log in again");
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((data && data.message) || r.status + " " + r.statusText);
  return data;
}

function rows(tableId, items, cells) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...items.map((it) => el("tr", {}, ...cells(it).map((c) => el("td", {}, c)))));
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (state.logAbort) state.logAbort.abort();
  state.logAbort = null;
  if (state.ws) state.ws.close();
  state.ws = null;
}

function every(ms, f) {
  f();
  state.timers.push(setInterval(f, ms));
}

function logout() {
  state.token = null;
  sessionStorage.removeItem("op-token");
  location.hash = "#/login";
  route();
}

// ---------------------------------------------------------------------------------------------
// Views

async function login(ev) {
  ev.preventDefault();
  showError("");
  const body = { username: $("login-user").value, password: $("login-password").value };
  if ($("login-org").value) body.organization = $("login-org").value;
  const r = await fetch("/op/v1/auth/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await r.json();
  if (!r.ok) return showError(data.message || "login failed");
  state.token = data.access_token;
  sessionStorage.setItem("op-token", state.token);
  location.hash = "#/dashboard";
}

// Single sign-on: OpenID Connect's authorization code flow with PKCE against the platform's
// own provider, as its built-in public client `op-console`.
const CLIENT = "op-console";
const redirectUri = () => location.origin + "/console/";
const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

async function sso() {
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(32)));
  const st = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("op-pkce", JSON.stringify({ verifier, state: st }));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const q = new URLSearchParams({ response_type: "code", client_id: CLIENT, redirect_uri: redirectUri(), scope: "openid", state: st, code_challenge: challenge, code_challenge_method: "S256" });
  location.assign("/oauth2/authorize?" + q);
}

/// Back from the provider with a code: exchange it (with the verifier) for the token.
async function ssoReturn() {
  const q = new URLSearchParams(location.search);
  if (!q.has("code") && !q.has("error")) return;
  history.replaceState(null, "", "/console/#/dashboard");
  const saved = JSON.parse(sessionStorage.getItem("op-pkce") || "{}");
  sessionStorage.removeItem("op-pkce");
  if (q.has("error")) return (state.pendingError = "single sign-on: " + (q.get("error_description") || q.get("error")));
  if (!saved.state || saved.state !== q.get("state")) return (state.pendingError = "single sign-on: the answer does not match the request; try again");
  const body = new URLSearchParams({ grant_type: "authorization_code", code: q.get("code"), redirect_uri: redirectUri(), client_id: CLIENT, code_verifier: saved.verifier });
  const r = await fetch("/oauth2/token", { method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body });
  const data = await r.json();
  if (!r.ok) return (state.pendingError = "single sign-on: " + (data.error_description || data.error || r.status));
  state.token = data.access_token;
  sessionStorage.setItem("op-token", state.token);
}

function drawLines(chart, series, unit) {
  const w = 600, h = 200, pad = 30;
  chart.replaceChildren();
  const all = [...series.values()].flat();
  const max = Math.max(1, ...all.map((p) => p.v));
  const t0 = Math.min(...all.map((p) => p.t), Date.now());
  const span = Math.max(1, Date.now() - t0);
  chart.append(svg("line", { x1: pad, y1: h - pad, x2: w, y2: h - pad, class: "axis" }));
  chart.append(svg("line", { x1: pad, y1: 0, x2: pad, y2: h - pad, class: "axis" }));
  const top = svg("text", { x: 2, y: 12, class: "label" });
  top.textContent = Math.round(max) + " " + unit;
  chart.append(top);
  let i = 0;
  for (const [name, pts] of series) {
    const d = pts.map((p) => `${pad + ((p.t - t0) / span) * (w - pad)},${h - pad - (p.v / max) * (h - pad - 10)}`).join(" ");
    chart.append(svg("polyline", { points: d, class: "series s" + (i % 6), "data-name": name }));
    const last = d.split(" ").pop().split(",");
    chart.append(svg("circle", { cx: last[0], cy: last[1], r: 3, class: "s" + (i % 6) }));
    const label = svg("text", { x: pad + 8, y: 14 + 14 * i, class: "label s" + (i % 6) });
    label.textContent = name;
    chart.append(label);
    i++;
  }
}

function drawBars(chart, items) {
  const w = 600, h = 200, pad = 30;
  chart.replaceChildren();
  const max = Math.max(1, ...items.map((x) => x.v));
  const bw = Math.max(8, Math.min(80, (w - pad) / Math.max(1, items.length) - 10));
  items.forEach((x, i) => {
    const bh = (x.v / max) * (h - pad - 20);
    const bx = pad + 10 + i * (bw + 10);
    chart.append(svg("rect", { x: bx, y: h - pad - bh, width: bw, height: bh, class: "bar", "data-name": x.name }));
    const t = svg("text", { x: bx, y: h - pad + 14, class: "label" });
    t.textContent = x.name + " " + x.v.toFixed(1);
    chart.append(t);
  });
}

async function dashboard() {
  every(2000, async () => {
    try {
      const [apps, insts, alarms, usage, qoe] = await Promise.all([
        api("GET", CAMARA + "/apps"),
        api("GET", CAMARA + "/appinstances"),
        api("GET", "/op/v1/alarms?state=firing"),
        api("GET", "/op/v1/resources/instances"),
        api("GET", "/op/v1/qoe"),
      ]);
      const appName = (id) => (apps.find((a) => a.appId === id) || {}).name || id;
      const ms = (x) => (x == null ? "-" : x.toFixed(2));
      rows("dash-qoe", qoe, (q) => [q.edgeCloudZoneName, appName(q.appId), q.probes, ms(q.p50Ms), ms(q.p95Ms), ms(q.expectedMeanMs)]);
      $("dash-apps").textContent = apps.length;
      $("dash-instances").textContent = insts.length;
      $("dash-ready").textContent = insts.filter((i) => i.status === "ready").length;
      $("dash-alarms").textContent = alarms.length;
      const now = Date.now();
      for (const u of usage) {
        const h = state.history.get(u.name) || [];
        h.push({ t: now, v: u.cpuMillicores });
        while (h.length > 150) h.shift();
        state.history.set(u.name, h);
      }
      drawLines($("chart-cpu"), state.history, "m");
      drawBars($("chart-mem"), usage.map((u) => ({ name: u.name, v: u.memoryBytes / 1048576 })));
      rows("dash-health", usage, (u) => [u.name, u.organization, u.health, u.cpuMillicores, (u.memoryBytes / 1048576).toFixed(1), u.netRxBytesPerSec, u.netTxBytesPerSec]);
    } catch (e) {
      showError(e.message);
    }
  });
}

async function map() {
  const [zones, insts] = await Promise.all([api("GET", "/op/v1/zones"), api("GET", CAMARA + "/appinstances")]);
  const m = $("map");
  m.replaceChildren();
  const pts = zones.map((z) => z.spec.location);
  const lats = pts.map((p) => p.latitude), lons = pts.map((p) => p.longitude);
  const pad = 2;
  const box = { s: Math.min(...lats, 90) - pad, n: Math.max(...lats, -90) + pad, w: Math.min(...lons, 180) - pad, e: Math.max(...lons, -180) + pad };
  const x = (lon) => 20 + ((lon - box.w) / Math.max(0.01, box.e - box.w)) * 680;
  const y = (lat) => 340 - ((lat - box.s) / Math.max(0.01, box.n - box.s)) * 320;
  m.append(svg("rect", { x: 0, y: 0, width: 720, height: 360, class: "sea" }));
  // A graticule: a line (and its degrees) every step across the box.
  const step = Math.max(0.5, Math.pow(10, Math.floor(Math.log10(Math.max(box.e - box.w, box.n - box.s)))));
  for (let lon = Math.ceil(box.w / step) * step; lon <= box.e; lon += step) {
    m.append(svg("line", { x1: x(lon), y1: 0, x2: x(lon), y2: 360, class: "grid" }));
    const t = svg("text", { x: x(lon) + 2, y: 356, class: "label" });
    t.textContent = lon.toFixed(1) + "°";
    m.append(t);
  }
  for (let lat = Math.ceil(box.s / step) * step; lat <= box.n; lat += step) {
    m.append(svg("line", { x1: 0, y1: y(lat), x2: 720, y2: y(lat), class: "grid" }));
    const t = svg("text", { x: 2, y: y(lat) - 2, class: "label" });
    t.textContent = lat.toFixed(1) + "°";
    m.append(t);
  }
  for (const z of zones) {
    const zx = x(z.spec.location.longitude), zy = y(z.spec.location.latitude);
    m.append(svg("circle", { cx: zx, cy: zy, r: 14, class: "zone", "data-zone": z.metadata.name }));
    const t = svg("text", { x: zx, y: zy - 32, class: "label", "text-anchor": "middle" });
    t.textContent = z.metadata.name;
    m.append(t);
    const here = insts.filter((i) => i.edgeCloudZoneId === z.metadata.uid);
    here.forEach((i, k) => {
      const a = (2 * Math.PI * k) / Math.max(1, here.length);
      m.append(svg("circle", { cx: zx + 24 * Math.cos(a), cy: zy + 24 * Math.sin(a), r: 5, class: "instance " + i.status, "data-instance": i.name }));
    });
  }
  rows("map-zones", zones, (z) => [z.metadata.name, z.spec.region, z.status.state, insts.filter((i) => i.edgeCloudZoneId === z.metadata.uid).length]);
}

async function apps() {
  const [list, zones] = await Promise.all([api("GET", CAMARA + "/apps"), api("GET", CAMARA + "/edge-cloud-zones")]);
  rows("apps", list, (a) => [a.name, a.version, a.appRepo.imagePath, a.appId, el("button", { class: "danger", onclick: () => act(() => api("DELETE", CAMARA + "/apps/" + a.appId), apps) }, "Delete")]);
  $("deploy-app").replaceChildren(...list.map((a) => el("option", { value: a.appId }, a.name)));
  $("deploy-zone").replaceChildren(...zones.map((z) => el("option", { value: z.edgeCloudZoneId }, z.edgeCloudZoneName)));
}

async function act(f, then) {
  showError("");
  try {
    await f();
    await then();
  } catch (e) {
    showError(e.message);
  }
}

async function onboard(ev) {
  ev.preventDefault();
  const org = claims().org;
  const manifest = {
    name: $("app-name").value,
    version: $("app-version").value,
    appProvider: org,
    packageType: "CONTAINER",
    appRepo: { type: "PUBLICREPO", imagePath: $("app-image").value },
    requiredResources: { infraKind: "container", numCPU: "500m", memory: 128 },
    componentSpec: [{ componentName: "main", networkInterfaces: [{ interfaceId: "main", protocol: "TCP", port: Number($("app-port").value), visibilityType: "VISIBILITY_EXTERNAL" }] }],
  };
  await act(() => api("POST", CAMARA + "/apps", manifest), apps);
}

async function deploy(ev) {
  ev.preventDefault();
  const body = { name: $("deploy-name").value, appId: $("deploy-app").value, edgeCloudZoneId: $("deploy-zone").value };
  await act(() => api("POST", CAMARA + "/appinstances", body), async () => {
    location.hash = "#/instances";
  });
}

async function instances() {
  every(1500, async () => {
    try {
      const [list, appsList, zones] = await Promise.all([api("GET", CAMARA + "/appinstances"), api("GET", CAMARA + "/apps"), api("GET", CAMARA + "/edge-cloud-zones")]);
      const appName = (id) => (appsList.find((a) => a.appId === id) || {}).name || id;
      const zoneName = (id) => (zones.find((z) => z.edgeCloudZoneId === id) || {}).edgeCloudZoneName || id;
      rows("instances", list, (i) => {
        const ep = (i.componentEndpointInfo || [])[0];
        const url = ep ? `http://${ep.accessPoints.ipv4Addresses[0]}:${ep.accessPoints.port}/` : "";
        return [
          el("a", { href: "#/instance/" + i.appInstanceId, class: "open" }, i.name),
          appName(i.appId),
          zoneName(i.edgeCloudZoneId),
          el("span", { class: "state " + i.status }, i.status),
          url,
          el("button", { class: "danger", onclick: () => act(() => api("DELETE", CAMARA + "/appinstances/" + i.appInstanceId), async () => {}) }, "Delete"),
        ];
      });
    } catch (e) {
      showError(e.message);
    }
  });
}

async function followLogs(id) {
  const out = $("inst-logs");
  out.textContent = "";
  state.logAbort = new AbortController();
  const r = await fetch(`/op/v1/appinstances/${id}/logs?tail=200&follow=true`, { headers: { Authorization: "Bearer " + state.token }, signal: state.logAbort.signal });
  if (!r.ok) return showError("logs: " + ((await r.json()).message || r.status));
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out.textContent += dec.decode(value, { stream: true });
    out.scrollTop = out.scrollHeight;
  }
}

function terminal(id) {
  $("term-out").textContent = "";
  $("term-form").onsubmit = (ev) => {
    ev.preventDefault();
    const cmd = $("term-input").value;
    if (!cmd) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/op/v1/appinstances/${id}/exec?command=sh&command=-c&command=${encodeURIComponent(cmd)}`;
    const ws = new WebSocket(url, ["op.exec.v1", "bearer." + state.token]);
    ws.binaryType = "arraybuffer";
    state.ws = ws;
    const out = $("term-out");
    const dec = new TextDecoder();
    out.textContent += "$ " + cmd + "\n";
    ws.onmessage = (m) => {
      const b = new Uint8Array(m.data);
      const payload = dec.decode(b.slice(1));
      if (b[0] === 1 || b[0] === 2) out.textContent += payload;
      if (b[0] === 3) out.textContent += "[exit " + JSON.parse(payload).exitCode + "]\n";
      out.scrollTop = out.scrollHeight;
    };
    ws.onopen = () => ws.send(new Uint8Array([255, 0]));
    ws.onerror = () => showError("the terminal could not connect");
    $("term-input").value = "";
  };
}

async function instance(id) {
  every(2000, async () => {
    try {
      const d = await api("GET", `/op/v1/appinstances/${id}/debug`);
      $("inst-name").textContent = d.name;
      $("inst-state").textContent = d.state;
      $("inst-message").textContent = d.message || "";
      rows("inst-events", d.events.slice().reverse(), (e) => [e.at, e.severity, e.reason, e.message]);
    } catch (e) {
      showError(e.message);
    }
  });
  terminal(id);
  followLogs(id).catch((e) => {
    if (e.name !== "AbortError") showError(e.message);
  });
}

async function clusters() {
  const [zones, apps] = await Promise.all([api("GET", CAMARA + "/edge-cloud-zones"), api("GET", CAMARA + "/apps")]);
  $("cluster-zone").replaceChildren(...zones.map((z) => el("option", { value: z.edgeCloudZoneId }, z.edgeCloudZoneName)));
  $("lb-app").replaceChildren(...apps.map((a) => el("option", { value: a.appId }, a.name)));
  $("lb-form").onsubmit = (ev) => {
    ev.preventDefault();
    const body = { name: $("lb-name").value, spec: { clusterId: $("lb-cluster").value, appId: $("lb-app").value, backendPort: Number($("lb-port").value) } };
    act(() => api("POST", "/op/v1/loadbalancers", body), async () => {});
  };
  $("cluster-form").onsubmit = (ev) => {
    ev.preventDefault();
    const body = { name: $("cluster-name").value, spec: { edgeCloudZoneId: $("cluster-zone").value, outboundAllowed: $("cluster-outbound").checked } };
    act(() => api("POST", "/op/v1/clusters", body), async () => {});
  };
  every(1500, async () => {
    try {
      const [list, lbs] = await Promise.all([api("GET", "/op/v1/clusters"), api("GET", "/op/v1/loadbalancers")]);
      const chosen = $("lb-cluster").value;
      if ($("lb-cluster").options.length !== list.length) {
        $("lb-cluster").replaceChildren(...list.map((c) => el("option", { value: c.id }, c.name)));
        if (chosen) $("lb-cluster").value = chosen;
      }
      rows("clusters", list, (c) => [
        c.name,
        el("span", { class: "state " + c.state.toLowerCase() }, c.state),
        c.spec.outboundAllowed ? "allowed" : "denied",
        c.health,
        c.members.map((m) => m.name + " (" + m.health + ")").join(", "),
        el("button", { class: "danger", onclick: () => act(() => api("DELETE", "/op/v1/clusters/" + c.id), async () => {}) }, "Delete"),
      ]);
      rows("lbs", lbs, (l) => [l.name, l.frontend || "-", l.spec.backendPort, l.backends.map((b) => b.name + (b.healthy ? " healthy" : " down")).join(", ")]);
    } catch (e) {
      showError(e.message);
    }
  });
}

async function alarms() {
  $("receiver-form").onsubmit = (ev) => {
    ev.preventDefault();
    const body = { name: $("receiver-name").value, spec: { url: $("receiver-url").value } };
    act(() => api("POST", "/op/v1/alarmreceivers", body), alarms);
  };
  const [list, receivers] = await Promise.all([api("GET", "/op/v1/alarms"), api("GET", "/op/v1/alarmreceivers")]);
  rows("alarms", list, (a) => [a.state, a.alertname, a.severity, a.objectKind + " " + a.objectName, a.startsAt, a.summary]);
  rows("receivers", receivers, (r) => [r.name, r.organization || "(operator)", r.spec.url, r.lastDelivery ? r.lastDelivery.outcome : "-"]);
}

async function audit() {
  const c = claims();
  const list = await api("GET", "/op/v1/audit?limit=200" + (c.role === "Manager" || c.role === "OperatorAdmin" || c.role === "OperatorViewer" ? "" : "&user=" + encodeURIComponent(c.sub)));
  rows("audit", list, (r) => [r.spec.at, r.spec.user || "-", r.spec.method, r.spec.path, r.spec.status]);
}

const views = { dashboard, map, apps, instances, clusters, alarms, audit };

async function route() {
  stopTimers();
  showError(state.pendingError || "");
  state.pendingError = null;
  const [, name, arg] = (location.hash || "#/dashboard").split("/");
  const target = !state.token ? "login" : name in views || name === "instance" ? name : "dashboard";
  document.querySelectorAll(".view").forEach((v) => (v.hidden = v.id !== "view-" + target));
  $("nav").hidden = $("logout").hidden = !state.token;
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.id === "nav-" + target));
  const c = state.token ? claims() : {};
  $("who").textContent = state.token ? `${c.sub} · ${c.role}${c.org ? " · " + c.org : ""}` : "";
  if (!state.token) return;
  try {
    if (target === "instance") await instance(arg);
    else await views[target]();
  } catch (e) {
    showError(e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => login(e).catch((x) => showError(x.message)));
  $("app-form").addEventListener("submit", onboard);
  $("deploy-form").addEventListener("submit", deploy);
  $("logout").addEventListener("click", logout);
  $("sso").addEventListener("click", () => sso().catch((e) => showError(e.message)));
  window.addEventListener("hashchange", route);
  ssoReturn()
    .catch((e) => (state.pendingError = e.message))
    .then(route);
});
