// Vigil dashboard: plain modules of DOM code over the public REST API (no framework, no build step).
// The session is an HttpOnly cookie set by POST /ui/session; changes echo the CSRF cookie in X-CSRF-Token.
// Every value from the API is written with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { severities: new Set(), connections: [], pollTimer: null, finding: null, slug: "" };
const VIEWS = ["overview", "findings", "scans", "connections", "approvals", "settings"];
const SVG = "http://www.w3.org/2000/svg";

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)vigil_csrf=([^;]+)/);
  return m ? m[1] : "";
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf();
  if (state.slug) headers["X-Tenant-Slug"] = state.slug;
  const r = await fetch(path.startsWith("/ui/") ? path : "/api/v1" + path,
    { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  const data = text ? JSON.parse(text) : {};
  if (r.status === 401 && !path.startsWith("/ui/")) { showLogin(); }
  if (!r.ok) {
    const e = new Error(data.message || ("HTTP " + r.status));
    e.detail = data;
    throw e;
  }
  return data;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  for (const b of document.querySelectorAll(".tab")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  $("drawer").hidden = true;
  if (location.hash !== "#" + view) history.replaceState(null, "", "#" + view);
  if (view === "findings") loadFindings();
  if (view === "scans") loadScans();
  if (view === "connections") loadConnections();
  if (view === "overview") loadOverview();
  if (view === "approvals") loadApprovals();
  if (view === "settings") loadSettings();
}

function showLogin() {
  $("login").hidden = false;
  $("nav").hidden = true;
  for (const id of VIEWS) $(id).hidden = true;
  $("drawer").hidden = true;
}

async function start() {
  if (!csrf()) { showLogin(); return; }
  try {
    const me = await api("GET", "/auth/me");
    $("who").textContent = (me.user && me.user.email) || "";
    const ws = $("workspace");
    ws.replaceChildren(...(me.memberships || [{ workspace: me.workspace, role: me.role }]).map((m) => {
      const o = document.createElement("option");
      o.value = m.workspace.slug;
      o.textContent = m.workspace.name + " (" + m.role + ")";
      o.selected = m.workspace.slug === (state.slug || me.workspace.slug);
      return o;
    }));
    $("login").hidden = true;
    $("nav").hidden = false;
    // The view in the address (#findings…) survives a reload and can be bookmarked.
    const wanted = location.hash.slice(1);
    show(VIEWS.includes(wanted) ? wanted : "overview");
  } catch (e) {
    showLogin();
  }
}

// --- findings ---------------------------------------------------------------------------------------
async function loadFindings() {
  const q = new URLSearchParams({ limit: "200", status: $("status-filter").value });
  if (state.severities.size) q.set("severity", [...state.severities].join(","));
  if ($("search").value.trim()) q.set("search", $("search").value.trim());
  const page = await api("GET", "/findings/?" + q.toString());
  const body = $("findings-table").tBodies[0];
  body.replaceChildren();
  for (const f of page.items) {
    const tr = document.createElement("tr");
    tr.tabIndex = 0;
    tr.dataset.id = f.id;
    tr.append(cell(f.severity, "sev-" + f.severity), cell(f.title), cell(f.resource_name), cell(f.rule_code), cell(f.status));
    tr.addEventListener("click", () => openFinding(f.id));
    tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openFinding(f.id); });
    body.append(tr);
  }
  // Large lists count at most 1,000 matches (total_capped): say "1000+" rather than a wrong exact number.
  $("findings-count").textContent = page.total + (page.total_capped ? "+" : "") + " finding" + (page.total === 1 && !page.total_capped ? "" : "s");
  performance.mark("findings-rendered");  // read by scripts/bench dashboard
}

async function openFinding(id) {
  const f = await api("GET", "/findings/" + encodeURIComponent(id));
  state.finding = f;
  $("drawer-title").textContent = f.title;
  const facts = $("drawer-facts");
  facts.replaceChildren();
  for (const [k, v] of [["Severity", f.severity], ["Status", f.status], ["Check", f.rule_code], ["Resource", f.resource_name],
                        ["CWE", f.cwe || ""], ["First seen", f.first_seen_at]]) {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v || "";
    facts.append(dt, dd);
  }
  $("drawer-evidence").textContent = JSON.stringify(f.evidence, null, 2);
  $("drawer-remediation").textContent = (f.remediation && f.remediation.console) || "";
  const comp = $("drawer-compliance");
  comp.replaceChildren();
  for (const [fw, controls] of Object.entries(f.compliance || {})) {
    const li = document.createElement("li");
    li.textContent = fw + ": " + controls.join(", ");
    comp.append(li);
  }
  $("triage-error").textContent = "";
  $("fix-status").textContent = "";
  $("request-fix").hidden = !f.auto_fix;
  $("drawer").hidden = false;
  $("drawer-close").focus();
}

async function suppress(ev) {
  ev.preventDefault();
  try {
    await api("POST", "/findings/" + encodeURIComponent(state.finding.id) + "/suppress", { reason: $("triage-reason").value });
    $("drawer").hidden = true;
    $("triage-reason").value = "";
    loadFindings();
  } catch (e) {
    $("triage-error").textContent = e.message;
  }
}

// --- scans ------------------------------------------------------------------------------------------
async function loadScans() {
  const conns = await api("GET", "/connections/?limit=200");
  state.connections = conns.items;
  const sel = $("scan-connection");
  sel.replaceChildren(...conns.items.map((c) => { const o = document.createElement("option"); o.value = c.id; o.textContent = c.name; return o; }));
  const names = Object.fromEntries(conns.items.map((c) => [c.id, c.name]));
  const scans = await api("GET", "/scans/?limit=50");
  const body = $("scans-table").tBodies[0];
  body.replaceChildren();
  for (const s of scans.items) {
    const tr = document.createElement("tr");
    const n = s.findings_count || {};
    tr.append(cell(s.created_at), cell(names[s.connection_id] || s.connection_id), cell(s.status),
              cell(["critical", "high", "medium", "low", "info"].map((k) => k + " " + (n[k] || 0)).join(", ")));
    body.append(tr);
  }
}

async function startScan(ev) {
  ev.preventDefault();
  const scan = await api("POST", "/scans/trigger", { connection_id: $("scan-connection").value });
  $("progress-box").hidden = false;
  follow(scan.id);
}

function follow(id) {
  clearTimeout(state.pollTimer);
  const tick = async () => {
    const p = await api("GET", "/scans/" + id + "/progress");
    const s = await api("GET", "/scans/" + id);
    const pct = p.percent_complete;
    $("progress").setAttribute("aria-valuenow", String(pct));
    $("progress-fill").style.width = pct + "%";
    const done = ["completed", "failed", "canceled"].includes(p.status);
    $("progress-text").textContent = p.phase + " — " + pct + "% (" + p.parts_done + "/" + p.parts_total + " parts)" +
      (done ? (s.findings_ingested ? " — findings are up to date" : " — updating findings…") : "");
    if (done && s.findings_ingested) { loadScans(); return; }
    state.pollTimer = setTimeout(tick, 400);
  };
  tick();
}

// --- connections ------------------------------------------------------------------------------------
async function loadConnections() {
  const conns = await api("GET", "/connections/?limit=200");
  const body = $("connections-table").tBodies[0];
  body.replaceChildren();
  for (const c of conns.items) {
    const tr = document.createElement("tr");
    tr.append(cell(c.name), cell(c.provider), cell(c.status), cell(c.last_scan_at || "never"));
    body.append(tr);
  }
}

async function addAWS(ev) {
  ev.preventDefault();
  const settings = { regions: [$("aws-region").value.trim()] };
  if ($("aws-endpoint").value.trim()) settings.endpoint_url = $("aws-endpoint").value.trim();
  try {
    await api("POST", "/connections/", { name: $("aws-name").value, provider: "aws", settings,
                                        credentials: { access_key_id: $("aws-key").value.trim(), secret_access_key: $("aws-secret").value } });
    $("aws-error").textContent = "";
    ev.target.reset();
    $("aws-region").value = "us-east-1";
    loadConnections();
  } catch (e) {
    const issues = (e.detail && e.detail.issues) || [];
    $("aws-error").textContent = e.message + (issues.length ? ": " + issues.map((i) => i.path + " " + i.message).join("; ") : "");
  }
}

async function requestFix() {
  try {
    const a = await api("POST", "/remediations/request", { finding_id: state.finding.id });
    $("fix-status").textContent = "Fix " + a.status.replace("_", " ");
  } catch (e) {
    $("fix-status").textContent = e.message;
  }
}

async function addWeb(ev) {
  ev.preventDefault();
  const settings = { url: $("web-url").value };
  if ($("web-ca").value.trim()) settings.ca_pem = $("web-ca").value;
  try {
    await api("POST", "/connections/", { name: $("web-name").value, provider: "web", settings });
    $("conn-error").textContent = "";
    ev.target.reset();
    loadConnections();
  } catch (e) {
    const issues = (e.detail && e.detail.issues) || [];
    $("conn-error").textContent = e.message + (issues.length ? ": " + issues.map((i) => i.path + " " + i.message).join("; ") : "");
  }
}

// --- overview: plan, compliance, trend ---------------------------------------------------------------
async function loadOverview() {
  const [sub, score, trend] = await Promise.all([api("GET", "/billing/subscription"), api("GET", "/compliance/score"),
                                                 api("GET", "/findings/resolution-trend")]);
  const scans = (sub.usage || {}).scans || {};
  $("plan").textContent = "Plan: " + (sub.plan_name || sub.plan) + " (" + sub.status + ") — scans this period: " + (scans.used || 0) +
    (scans.limit == null ? "" : " of " + scans.limit);
  const body = $("compliance-table").tBodies[0];
  body.replaceChildren();
  for (const f of score.frameworks) {
    const tr = document.createElement("tr");
    tr.append(cell(f.name), cell(Math.round(f.score) + "%"), cell(f.passed), cell(f.failed));
    body.append(tr);
  }
  drawTrend(trend.weeks);
}

function drawTrend(weeks) {
  const w = 480, h = 160, pad = 20, bw = (w - pad) / weeks.length;
  const max = Math.max(1, ...weeks.map((x) => Math.max(x.opened, x.resolved)));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  weeks.forEach((wk, i) => {
    for (const [k, dx] of [["opened", 2], ["resolved", bw / 2]]) {
      const r = document.createElementNS(SVG, "rect");
      const bh = (h - 2 * pad) * wk[k] / max;
      r.setAttribute("x", String(pad + i * bw + dx));
      r.setAttribute("y", String(h - pad - bh));
      r.setAttribute("width", String(bw / 2 - 3));
      r.setAttribute("height", String(bh));
      r.setAttribute("class", k);
      const t = document.createElementNS(SVG, "title");
      t.textContent = wk.week + ": " + wk[k] + " " + k;
      r.append(t);
      svg.append(r);
    }
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", String(pad + i * bw));
    label.setAttribute("y", String(h - 4));
    label.textContent = wk.week.slice(5);
    svg.append(label);
  });
  $("trend").replaceChildren(svg);
}

// --- approvals ----------------------------------------------------------------------------------------
async function loadApprovals() {
  const page = await api("GET", "/remediations/pending?limit=100");
  const body = $("approvals-table").tBodies[0];
  body.replaceChildren();
  $("approvals-empty").hidden = page.items.length > 0;
  for (const a of page.items) {
    const tr = document.createElement("tr");
    const decide = document.createElement("td");
    for (const [label, path] of [["Approve", "approve"], ["Reject", "reject"]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", async () => {
        try {
          await api("POST", "/remediations/" + a.id + "/" + path, { reason: label + "d in the dashboard" });
          loadApprovals();
        } catch (e) { $("approvals-error").textContent = e.message; }
      });
      decide.append(b);
    }
    tr.append(cell(a.title), cell(a.resource_name || a.resource_id), cell(a.severity), cell(a.requested_by), decide);
    body.append(tr);
  }
}

// --- settings: API keys, reports, webhooks ------------------------------------------------------------
async function loadSettings() {
  const keys = await api("GET", "/api-keys/?limit=100");
  const body = $("keys-table").tBodies[0];
  body.replaceChildren();
  for (const k of keys.items) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Revoke";
    b.addEventListener("click", async () => { await api("DELETE", "/api-keys/" + k.id); loadSettings(); });
    td.append(b);
    tr.append(cell(k.name), cell(k.prefix), cell(k.role), td);
    body.append(tr);
  }
  try {
    const hooks = await api("GET", "/webhooks/endpoints?limit=100");
    const hb = $("webhooks-table").tBodies[0];
    hb.replaceChildren();
    for (const h of hooks.items) {
      const tr = document.createElement("tr");
      tr.append(cell(h.url), cell((h.events || []).join(", ")), cell(h.status || (h.enabled ? "enabled" : "disabled")));
      hb.append(tr);
    }
  } catch (e) { /* webhooks need the admin role */ }
}

async function createKey(ev) {
  ev.preventDefault();
  const k = await api("POST", "/api-keys/", { name: $("key-name").value, role: $("key-role").value });
  $("new-key").textContent = "Copy this key now, it is not shown again: " + k.key;
  ev.target.reset();
  loadSettings();
}

async function generateReport(ev) {
  ev.preventDefault();
  const r = await api("POST", "/reports/generate", { type: $("report-type").value, format: $("report-format").value });
  const li = document.createElement("li");
  const a = document.createElement("a");
  a.href = "/api/v1/reports/" + encodeURIComponent(r.id) + "/download";
  a.textContent = r.type + " (" + r.format + ") — download";
  li.append(a);
  $("reports-list").prepend(li);
}

async function signUp(ev) {
  ev.preventDefault();
  try {
    await api("POST", "/auth/signup", { full_name: $("su-name").value, workspace_name: $("su-workspace").value,
                                        email: $("su-email").value, password: $("su-password").value });
    await api("POST", "/ui/session", { email: $("su-email").value, password: $("su-password").value });
    $("su-password").value = "";
    $("signup-error").textContent = "";
    start();
  } catch (e) {
    const issues = (e.detail && e.detail.issues) || [];
    $("signup-error").textContent = e.message + (issues.length ? ": " + issues.map((i) => i.path + " " + i.message).join("; ") : "");
  }
}

// --- wiring -----------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/ui/session", { email: $("email").value, password: $("password").value });
      $("password").value = "";
      $("login-error").textContent = "";
      start();
    } catch (e) {
      $("login-error").textContent = e.message;
    }
  });
  $("logout").addEventListener("click", async () => { await fetch("/ui/session", { method: "DELETE", credentials: "same-origin" }); showLogin(); });
  for (const b of document.querySelectorAll(".tab")) b.addEventListener("click", () => show(b.dataset.view));
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => {
      const on = chip.getAttribute("aria-pressed") !== "true";
      chip.setAttribute("aria-pressed", String(on));
      if (on) state.severities.add(chip.dataset.sev); else state.severities.delete(chip.dataset.sev);
      loadFindings();
    });
  }
  $("status-filter").addEventListener("change", loadFindings);
  $("search").addEventListener("input", () => { clearTimeout(state.searchTimer); state.searchTimer = setTimeout(loadFindings, 250); });
  $("drawer-close").addEventListener("click", () => { $("drawer").hidden = true; });
  document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") $("drawer").hidden = true; });
  $("triage-form").addEventListener("submit", suppress);
  $("scan-form").addEventListener("submit", startScan);
  $("web-form").addEventListener("submit", addWeb);
  $("aws-form").addEventListener("submit", addAWS);
  $("request-fix").addEventListener("click", requestFix);
  $("signup-form").addEventListener("submit", signUp);
  $("key-form").addEventListener("submit", createKey);
  $("report-form").addEventListener("submit", generateReport);
  $("workspace").addEventListener("change", () => { state.slug = $("workspace").value; start(); });
  start();
});
