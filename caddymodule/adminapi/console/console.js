// Gatekeeper security console. Plain JavaScript, no library: it talks to
// the admin API beside it (/gatekeeper/…) and builds every element with
// textContent, never HTML from data.
"use strict";

const base = location.pathname.replace(/ui\/.*$/, "");
const $ = (sel) => document.querySelector(sel);
const state = { approvals: [], bans: [], status: null, cursor: null, unseen: 0, paused: false, view: "" };

// el makes an element with attributes (on* are listeners) and children.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v; // through the CSSOM, which the CSP allows
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// api calls the admin API; a refusal throws an Error with its message and
// status.
async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.body = JSON.stringify(body);
    opts.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(base + path, opts);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const err = new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

const pad = (n) => String(n).padStart(2, "0");
function utc(t) {
  if (!t) return "";
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
function rfc3339(d) { return d.toISOString().replace(/\.\d+Z$/, "Z"); }
function relative(t) {
  const s = Math.round((new Date(t) - Date.now()) / 1000);
  const a = Math.abs(s);
  const txt = a < 90 ? `${a} s` : a < 5400 ? `${Math.round(a / 60)} min` : a < 172800 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return s >= 0 ? `in ${txt}` : `${txt} ago`;
}
const symbol = { active: "▶", scheduled: "◷", exhausted: "■", expired: "✓", revoked: "✕", pending: "…", denied: "⊘", lapsed: "⌛" };

// person is an identity as authentication established it: "bob (caddy_auth)",
// with the issuer when there is one.
function person(p) {
  if (!p) return "";
  return `${p.id} (${p.via}${p.issuer ? `, ${p.issuer}` : ""})`;
}
const approvalsSoFar = (a) => (a.reviews || []).filter((r) => r.decision === "approve").length;
// open is whether an approval still covers or will cover traffic.
const open = (a) => ["active", "scheduled", "exhausted"].includes(a.status);

function notice(text, bad) {
  const n = $("#notice");
  n.textContent = text;
  n.className = bad ? "notice bad" : "notice";
  n.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { n.hidden = true; }, 8000);
}

// ---- views ---------------------------------------------------------------

const views = ["approvals", "register", "feed", "bans", "audit", "report"];
function route() {
  const [name, arg] = (location.hash.slice(1) || "approvals").split("/");
  const view = views.includes(name) ? name : "approvals";
  state.view = view;
  for (const v of views) $(`#view-${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (view === "feed") { state.unseen = 0; $("#feed-count").textContent = ""; }
  if (view === "report") showReport(decodeURIComponent(arg || ""));
  if (view === "bans") loadBans();
  if (view === "audit") loadAudit();
  if (view === "register") defaults();
}

// ---- header: store health and the audit chain ------------------------------

function renderHealth(st) {
  const store = $("#store-health");
  store.textContent = st.store.up ? `${st.store.kind}: up` : `${st.store.kind}: DOWN`;
  store.className = "badge " + (st.store.up ? "ok" : "bad");
  store.title = st.store.description + (st.store.last_error ? ` — ${st.store.last_error}` : "");
  const audit = $("#audit-health");
  const a = st.audit;
  if (!a) { audit.textContent = "not checked yet"; audit.className = "badge"; }
  else if (a.error) { audit.textContent = "unreadable"; audit.className = "badge bad"; audit.title = a.error; }
  else if (!a.ok) {
    const b = a.chains.find((c) => !c.ok);
    audit.textContent = `BROKEN: ${b.kind} seq ${b.broken_at}`;
    audit.className = "badge bad";
    audit.title = b.problem;
  } else {
    const ap = a.chains.find((c) => c.kind === "approval");
    audit.textContent = `verified to seq ${ap.last.seq} at ${utc(a.verified_at).slice(11)}`;
    audit.className = "badge ok";
    audit.title = `approval chain head ${ap.last.hash}, checked ${utc(a.verified_at)} UTC`;
  }
  const g = st.impact_guard, guard = $("#guard-health");
  if (!g.enabled) { guard.textContent = "impact guard off"; guard.className = "badge"; }
  else if (g.state === "full") { guard.textContent = "full rate"; guard.className = "badge ok"; }
  else {
    guard.textContent = g.state === "paused" ? "paused: platform busy" : `throttled to ${Math.round(g.factor * 100)} %`;
    guard.className = "badge bad";
  }
  guard.title = [g.why, g.since && `since ${utc(g.since)} UTC`].filter(Boolean).join(", ") ||
    "the impact guard lets approved tests run at their approved rate";
  $("#updated").textContent = utc(new Date()).slice(11) + " UTC";
}

// ---- approvals timeline -----------------------------------------------------

function renderTimeline() {
  const box = $("#timeline");
  const filter = $("#tenant-filter");
  const tenants = [...new Set(state.approvals.map((a) => a.tenant))].sort();
  const chosen = filter.value;
  filter.replaceChildren(el("option", { value: "" }, "All tenants"),
    ...tenants.map((t) => el("option", { value: t, selected: t === chosen }, t)));
  const list = state.approvals.filter((a) => a.status !== "pending" && (!chosen || a.tenant === chosen));
  if (!list.length) {
    box.replaceChildren(el("p", { class: "empty" }, "No approvals yet: register one, or file a request, under “Register”."));
    return;
  }
  const now = Date.now();
  let lo = Math.min(now, ...list.map((a) => Date.parse(a.not_before)));
  let hi = Math.max(now, ...list.map((a) => Date.parse(a.not_after)));
  const span = Math.max(hi - lo, 3600e3);
  lo -= span * 0.04; hi += span * 0.04;
  const x = (t) => `${((t - lo) / (hi - lo)) * 100}%`;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => lo + f * (hi - lo));
  const axis = () => el("div", { class: "axis", "aria-hidden": "true" },
    ticks.map((t, i) => el("span", { style: `left:${i === 0 ? "3%" : i === 4 ? "95%" : x(t)}` }, utc(t).slice(5, 16))));

  const groups = tenants.filter((t) => (!chosen || t === chosen) && list.some((a) => a.tenant === t)).map((tenant) => {
    const rows = list.filter((a) => a.tenant === tenant).map((a) => approvalRow(a, x, now));
    return el("section", { class: "tenant", "aria-label": `Tenant ${tenant}` }, el("h3", {}, tenant), axis(), rows);
  });
  box.replaceChildren(capacityRow(x, lo, hi, axis), ...groups);
}

// capacityRow charts, over the timeline's span, the max_rps of the
// approvals (every tenant's, revoked ones left out) open together against
// the platform's test capacity: what registration checks.
function capacityRow(x, lo, hi, axis) {
  // The server sweeps the windows, as registration checks them.
  const capacity = (state.status && state.status.test_capacity) || 0;
  const steps = ((state.status && state.status.test_load) || [])
    .map((s) => ({ from: Date.parse(s.from), to: Date.parse(s.to), rps: s.rps }));
  let peak = 0, busiest = 0;
  for (const s of steps) {
    if (s.rps > peak) { peak = s.rps; busiest = s.from; }
  }
  const scale = Math.max(capacity, peak, 1);
  const h = (rps) => `${(rps / scale) * 100}%`;
  const fmt = (n) => Number(n.toFixed(2)).toLocaleString();
  const over = capacity > 0 && peak > capacity;
  const summary = capacity > 0
    ? `test_capacity ${fmt(capacity)}/s; busiest ${fmt(peak)}/s${peak ? ` at ${utc(busiest)} UTC` : ""}${over ? " — OVER" : ""}`
    : `no test_capacity set; busiest ${fmt(peak)}/s${peak ? ` at ${utc(busiest)} UTC` : ""}`;
  const track = el("div", { class: "track capacity-track", role: "img",
    "aria-label": `Approved tests' max_rps together over time: ${summary}` },
    steps.map((s) => el("div", {
      class: "load" + (capacity > 0 && s.rps > capacity ? " over" : ""),
      style: `left:${x(Math.max(s.from, lo))};width:calc(${x(Math.min(s.to, hi))} - ${x(Math.max(s.from, lo))});height:${h(s.rps)}`,
      title: `${fmt(s.rps)}/s from ${utc(s.from)} to ${utc(s.to)} UTC`,
    })),
    capacity > 0 && el("div", { class: "cap", style: `bottom:${h(capacity)}`, title: `test_capacity ${fmt(capacity)}/s` }),
    el("div", { class: "now", style: `left:${x(Date.now())}` }));
  return el("section", { class: "tenant capacity", "aria-label": "Platform test capacity" },
    el("h3", {}, "Platform test capacity"), axis(),
    el("div", { class: "row" },
      el("div", { class: "who" }, el("div", { class: over ? "status status-revoked" : "" }, summary),
        el("div", { class: "meta" }, "max_rps of the approvals open together, every tenant")),
      track));
}

function approvalRow(a, x, now) {
  const from = Date.parse(a.not_before), to = Date.parse(a.not_after);
  const used = a.usage.allowed || 0;
  const pct = a.max_requests ? Math.min(100, Math.round((used / a.max_requests) * 100)) : 0;
  const label = `${a.id}: ${a.status}, ${utc(a.not_before)} to ${utc(a.not_after)} UTC, ${used} of ${a.max_requests} requests used`;
  const ops = el("div", { class: "ops" },
    el("a", { class: "button small", href: `#report/${encodeURIComponent(a.id)}` }, "Report"),
    open(a) && a.require_token && a.requester && !a.token_issued &&
      el("button", { type: "button", class: "small", onclick: () => takeToken(a), "aria-label": `Get the test token of ${a.id}` }, "Get the test token"),
    open(a) &&
      el("button", { type: "button", class: "small", onclick: () => revoke(a), "aria-label": `Revoke ${a.id}` }, "Revoke"));
  return el("div", { class: "row", "data-id": a.id },
    el("div", { class: "who" },
      el("div", {}, el("span", { class: `status status-${a.status}` }, `${symbol[a.status] || ""} ${a.status}`), " ",
        el("span", { class: "id" }, a.id)),
      el("div", { class: "meta" }, a.approval_ref ? `ref ${a.approval_ref} · ${a.requested_by} → ${a.approved_by}` : `asked by ${a.requested_by}`),
      el("div", { class: "meta" }, `sources ${a.sources.join(", ")}`),
      el("div", { class: "usage" },
        el("meter", { min: 0, max: a.max_requests, value: used, "aria-label": "requests used" }),
        `${used.toLocaleString()} / ${a.max_requests.toLocaleString()} (${pct} %) · ${a.max_rps} rps, burst ${a.burst}`),
      a.revoke_reason && el("div", { class: "meta" }, `revoked: ${a.revoke_reason}`),
      a.deny_reason && el("div", { class: "meta" }, `denied: ${a.deny_reason}`),
      ops),
    el("div", { class: "track", role: "img", "aria-label": label },
      el("div", { class: `bar status-${a.status}`, style: `left:${x(from)};width:calc(${x(to)} - ${x(from)})`, title: label },
        `${symbol[a.status] || ""} ${a.status} · ${a.approval_ref}`),
      el("div", { class: "now", style: `left:${x(now)}` })));
}

async function loadApprovals() {
  state.approvals = await api("GET", "approvals");
  if (state.view === "approvals") { renderQueue(); renderTimeline(); }
}

// ---- the queue of requests waiting for review (four eyes) ------------------

function renderQueue() {
  const pending = state.approvals.filter((a) => a.status === "pending")
    .sort((a, b) => Date.parse(a.pending_until) - Date.parse(b.pending_until));
  $("#queue").hidden = !pending.length;
  $("#queue-count").textContent = pending.length ? String(pending.length) : "";
  $("#queue-table tbody").replaceChildren(...pending.map((a) => el("tr", { "data-id": a.id },
    el("td", {}, el("a", { class: "mono", href: `#report/${encodeURIComponent(a.id)}` }, a.id),
      a.contact && el("div", { class: "meta" }, `contact: ${a.contact}`),
      a.notes && el("div", { class: "meta" }, `notes: ${a.notes}`)),
    el("td", {}, a.tenant),
    el("td", { class: "mono" }, a.sources.join(", "),
      (a.hosts || []).length > 0 && el("div", { class: "meta" }, `hosts ${a.hosts.join(", ")}`),
      (a.paths || []).length > 0 && el("div", { class: "meta" }, `paths ${a.paths.join(", ")}`),
      (a.methods || []).length > 0 && el("div", { class: "meta" }, `methods ${a.methods.join(", ")}`)),
    el("td", { class: "mono" }, `${utc(a.not_before)} to ${utc(a.not_after)}`),
    el("td", {}, `${a.max_rps}/s, burst ${a.burst}`),
    el("td", {}, `${a.max_requests.toLocaleString()} requests${a.require_token ? ", token" : ""}`),
    el("td", {}, a.requester ? person(a.requester) : a.requested_by),
    el("td", { class: "approvals-count" }, `${approvalsSoFar(a)} of ${a.approvers_required}`),
    el("td", { title: `${utc(a.pending_until)} UTC` }, relative(a.pending_until)),
    el("td", {}, el("div", { class: "ops" },
      el("button", { type: "button", class: "small primary", onclick: () => approve(a), "aria-label": `Approve ${a.id}` }, "Approve"),
      el("button", { type: "button", class: "small", onclick: () => deny(a), "aria-label": `Deny ${a.id}` }, "Deny"))))));
}

// approve asks for the written approval's reference and sends the digest
// of the request as this page showed it, so that the approval binds to
// what the approver saw.
function approve(a) {
  $("#approve-id").textContent = a.id;
  $("#approve-what").textContent = `${a.tenant}: ${a.sources.join(", ")}, ${utc(a.not_before)} to ${utc(a.not_after)} UTC, ` +
    `${a.max_rps}/s, ${a.max_requests.toLocaleString()} requests; asked by ${a.requester ? person(a.requester) : a.requested_by}.`;
  $("#approve-digest").textContent = (a.digest || "").slice(0, 16);
  $("#approve-ref").value = "";
  $("#approve-note").value = "";
  ask($("#approve-dialog"), $("#approve-ref"), async () => {
    const got = await api("POST", `approvals/${encodeURIComponent(a.id)}/approve`,
      { approval_ref: $("#approve-ref").value.trim(), note: $("#approve-note").value.trim(), digest: a.digest });
    notice(got.status === "pending"
      ? `Your approval of ${a.id} is recorded: ${approvalsSoFar(got)} of ${got.approvers_required} approvals.`
      : `${a.id} is approved (${got.status}).`);
    await refresh();
  }, `Approving ${a.id}`);
}

function deny(a) {
  $("#deny-id").textContent = a.id;
  $("#deny-reason").value = "";
  ask($("#deny-dialog"), $("#deny-reason"), async () => {
    await api("POST", `approvals/${encodeURIComponent(a.id)}/deny`, { reason: $("#deny-reason").value.trim() });
    notice(`${a.id} is denied.`);
    await refresh();
  }, `Denying ${a.id}`);
}

// takeToken collects the test token of a request this user filed: once.
async function takeToken(a) {
  try {
    const got = await api("POST", `approvals/${encodeURIComponent(a.id)}/token`);
    $("#token-id").textContent = a.id;
    $("#token-value").textContent = got.token;
    $("#token-dialog").showModal();
  } catch (e) {
    notice(`Getting the test token of ${a.id} failed: ${e.message}`, true);
  }
  await refresh();
}

// ---- revoke --------------------------------------------------------------

function revoke(a) {
  $("#revoke-id").textContent = a.id;
  $("#revoke-reason").value = "";
  ask($("#revoke-dialog"), $("#revoke-reason"), async () => {
    await api("DELETE", `approvals/${encodeURIComponent(a.id)}?reason=${encodeURIComponent($("#revoke-reason").value)}`);
    notice(`Approval ${a.id} revoked.`);
    await refresh(); // the approvals and the status's capacity chart
  }, `Revoking ${a.id}`);
}

// ask opens dlg, focusing focus (the dialog's first control when null), and
// runs action when it is closed with "confirm"; a failure is told as what.
function ask(dlg, focus, action, what) {
  dlg.returnValue = "";
  dlg.onclose = async () => {
    if (dlg.returnValue !== "confirm") return;
    try { await action(); } catch (e) { notice(`${what} failed: ${e.message}`, true); }
  };
  dlg.showModal();
  if (focus) focus.focus();
}

// ---- register ------------------------------------------------------------

function defaults() {
  const f = $("#register-form");
  const now = new Date(Math.floor(Date.now() / 60000) * 60000);
  if (!f.not_before.value) f.not_before.value = rfc3339(now);
  if (!f.not_after.value) f.not_after.value = rfc3339(new Date(now.getTime() + 8 * 3600e3));
}

const lines = (v) => v.split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);

function clearErrors(f) {
  for (const p of f.querySelectorAll(".err")) p.textContent = "";
  for (const i of f.querySelectorAll("[aria-invalid]")) { i.removeAttribute("aria-invalid"); i.removeAttribute("aria-describedby"); }
  $("#form-error").hidden = true;
}

async function register(ev) {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  const num = (v) => (v.trim() === "" ? undefined : Number(v));
  const body = {
    tenant: f.tenant.value.trim(), sources: lines(f.sources.value),
    not_before: f.not_before.value.trim(), not_after: f.not_after.value.trim(),
    max_rps: num(f.max_rps.value), burst: num(f.burst.value), max_requests: num(f.max_requests.value),
    requested_by: f.requested_by.value.trim(), approved_by: f.approved_by.value.trim(), approval_ref: f.approval_ref.value.trim(),
    hosts: lines(f.hosts.value), paths: lines(f.paths.value),
    methods: f.methods.value.split(/\s+/).filter(Boolean).map((m) => m.toUpperCase()),
    contact: f.contact.value.trim(), notes: f.notes.value.trim(), require_token: f.require_token.checked,
  };
  for (const k of Object.keys(body)) {
    if (body[k] === "" || body[k] === undefined || (Array.isArray(body[k]) && !body[k].length)) delete body[k];
  }
  try {
    const a = await api("POST", "approvals", body);
    f.reset();
    defaults();
    await refresh(); // the approvals and the status's capacity chart
    if (a.status === "pending") {
      const need = a.approvers_required - approvalsSoFar(a);
      notice(`Request ${a.id} filed for tenant ${a.tenant}, waiting for ${need} approval${need === 1 ? "" : "s"}.`);
      location.hash = "#approvals";
      return;
    }
    if (a.token) {
      const box = $("#token-box");
      box.replaceChildren(el("strong", {}, `Approval ${a.id} registered. Test token, shown this once: `), el("code", {}, a.token),
        el("p", {}, "Give it to the tester over a secure channel; it is not stored and cannot be shown again."));
      box.hidden = false;
      return;
    }
    notice(`Approval ${a.id} registered for tenant ${a.tenant} (${a.status}).`);
    location.hash = "#approvals";
  } catch (e) {
    showFieldError(f, e);
  }
}

// showFieldError puts the API's error next to the field it names
// (`field "sources[1]": …`), or above the form when it names none.
function showFieldError(f, e) {
  const m = /field "([a-z_]+)(?:\[(\d+)\])?"/.exec(e.message);
  const input = m && f.elements[m[1]];
  if (!input) {
    const box = $("#form-error");
    box.textContent = e.message;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
    return;
  }
  const p = $(`#e-${m[1]}`);
  p.textContent = m[2] !== undefined ? `Entry ${Number(m[2]) + 1}: ${e.message.slice(m[0].length + 2)}` : e.message.slice(m[0].length + 2);
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", p.id);
  input.focus();
}

// ---- live feed -------------------------------------------------------------

async function pollFeed() {
  if (state.paused) return;
  const first = state.cursor === null;
  const page = await api("GET", `events?limit=500${first ? "" : `&since=${state.cursor}`}`);
  state.cursor = page.next;
  if (!page.events.length) return;
  const body = $("#feed-table tbody");
  for (const ev of page.events) {
    const req = `${ev.method} ${ev.host}${ev.path}`;
    body.prepend(el("tr", { class: first ? "" : "fresh" },
      el("td", { class: "mono" }, utc(ev.time)),
      el("td", { class: "mono" }, ev.source || ""),
      el("td", {}, ev.tenant || ""),
      el("td", { class: `verdict-${ev.verdict}` }, ev.verdict),
      el("td", {}, ev.reason || ""),
      el("td", {}, ev.scanner ? `${ev.scanner}${ev.signals ? ` (${ev.signals.join(", ")})` : ""}` : ""),
      el("td", {}, [ev.country, ev.asn ? `AS${ev.asn}` : ""].filter(Boolean).join(" / ")),
      el("td", { class: "mono" }, req)));
  }
  while (body.rows.length > 500) body.deleteRow(-1);
  $("#feed-empty").hidden = body.rows.length > 0;
  if (!first && state.view !== "feed") {
    state.unseen += page.events.length;
    $("#feed-count").textContent = state.unseen > 99 ? "99+" : String(state.unseen);
  }
}

// ---- bans ----------------------------------------------------------------

async function loadBans() {
  state.bans = await api("GET", "bans");
  const body = $("#bans-table tbody");
  body.replaceChildren(...state.bans.map((b) => el("tr", {},
    el("td", { class: "mono" }, b.ip),
    el("td", {}, b.reason),
    el("td", { class: "mono" }, utc(b.created_at)),
    el("td", { title: `${utc(b.expires_at)} UTC` }, relative(b.expires_at)),
    el("td", {}, el("button", { type: "button", class: "small", onclick: () => lift(b.ip), "aria-label": `Lift the ban of ${b.ip}` }, "Lift")))));
  $("#bans-empty").hidden = state.bans.length > 0;
}

function lift(ip) {
  $("#lift-ip").textContent = ip;
  ask($("#lift-dialog"), null, async () => {
    await api("DELETE", `bans/${ip}`);
    notice(`Ban of ${ip} lifted.`);
    await loadBans();
  }, `Lifting the ban of ${ip}`);
}

// ---- audit -----------------------------------------------------------------

function renderChains(v) {
  const box = $("#chains");
  if (!v) { box.replaceChildren(el("p", { class: "empty" }, "The chains have not been checked yet.")); return; }
  if (v.error) { box.replaceChildren(el("p", { class: "notice bad" }, `The store could not be read: ${v.error}`)); return; }
  box.replaceChildren(...v.chains.map((c) => el("div", { class: c.ok ? "chain" : "chain broken" },
    el("h3", {}, `${c.kind} chain: ${c.ok ? "✓ intact" : "✕ BROKEN"}`),
    c.ok ? el("p", {}, `${c.events} events${c.first_seq > 1 ? ` from seq ${c.first_seq}` : ""}, last seq ${c.last.seq}`)
      : el("p", {}, `broken at seq ${c.broken_at}: ${c.problem}`),
    c.last.hash && el("p", { class: "mono" }, `last verified hash ${c.last.hash}`),
    el("p", { class: "meta" }, `checked ${utc(v.verified_at)} UTC`))));
}

async function loadAudit() {
  renderChains(state.status && state.status.audit);
  const evs = await api("GET", "audit?limit=50");
  $("#audit-table tbody").replaceChildren(...evs.map((e) => el("tr", {},
    el("td", { class: "mono" }, e.seq ? `${e.action.split(".")[0]} ${e.seq}` : "—"),
    el("td", { class: "mono" }, utc(e.time)),
    el("td", {}, e.action),
    el("td", {}, e.actor || ""),
    el("td", { class: "mono" }, e.approval ? `${e.approval.id} (${e.approval.tenant})` : e.ban ? e.ban.ip : ""),
    el("td", { class: "mono", title: e.hash || "" }, e.hash ? e.hash.slice(0, 16) + "…" : ""))));
}

async function verifyNow() {
  try {
    const v = await api("POST", "audit/verify");
    state.status.audit = v;
    renderChains(v);
    renderHealth(state.status);
    notice(v.ok ? "Both audit chains verified intact." : "The audit trail is BROKEN: see below.", !v.ok);
  } catch (e) { notice(`Verification failed: ${e.message}`, true); }
}

// ---- close-out report ------------------------------------------------------

async function showReport(id) {
  const box = $("#report-body");
  box.replaceChildren(el("p", {}, "Loading…"));
  $("#export-link").href = `${base}approvals/${encodeURIComponent(id)}/export`;
  $("#export-link").setAttribute("download", `${id}-evidence.json`);
  try {
    const [a, r] = await Promise.all([api("GET", `approvals/${encodeURIComponent(id)}`), api("GET", `approvals/${encodeURIComponent(id)}/report`)]);
    const row = (k, v) => [el("dt", {}, k), el("dd", {}, v)];
    box.replaceChildren(
      el("dl", {},
        row("Approval", a.id), row("Tenant", a.tenant), row("Status", `${symbol[r.status] || ""} ${r.status}`),
        row("Written approval", a.approval_ref || "none yet"), row("Requested by", a.requested_by), row("Approved by", a.approved_by || "nobody yet"),
        r.requester && row("Requester", `${person(r.requester)}${r.requester.cert ? `, certificate ${r.requester.cert.slice(0, 16)}…` : ""}`),
        r.approvers_required > 0 && row("Approvals needed", `${r.approvers_required}, none the requester's`),
        a.pending_until && a.status === "pending" && row("Pending until", `${utc(a.pending_until)} UTC`),
        r.approved_at && row("Approved at", `${utc(r.approved_at)} UTC`),
        a.denied_at && row("Denied", `${utc(a.denied_at)} UTC: ${a.deny_reason}`),
        a.status === "lapsed" && row("Lapsed", `${utc(a.pending_until)} UTC, undecided`),
        row("Sources", a.sources.join(", ")), row("Hosts", (a.hosts || []).join(", ") || "the whole tenant"),
        row("Paths", (a.paths || []).join(", ") || "all"), row("Methods", (a.methods || []).join(", ") || "all"),
        row("Window (UTC)", `${utc(r.not_before)} to ${utc(r.not_after)}`),
        row("Bounds", `${r.max_rps} requests/s, burst ${r.burst}, ${r.max_requests.toLocaleString()} requests in all`),
        row("First request", r.first_seen ? `${utc(r.first_seen)} UTC` : "none"),
        row("Admitted", r.usage.allowed.toLocaleString()), row("Rate-limited", r.usage.rate_limited.toLocaleString()),
        row("Over budget", r.usage.budget_exhausted.toLocaleString()), row("Out of scope", r.usage.out_of_scope.toLocaleString()),
        row("Held back by the impact guard", (r.usage.platform_busy || 0).toLocaleString()),
        row("Held back by test_capacity", (r.usage.capacity_full || 0).toLocaleString()),
        a.revoked_at && row("Revoked", `${utc(a.revoked_at)} UTC${r.revoker ? ` by ${person(r.revoker)}` : r.revoked_by ? ` by ${r.revoked_by}` : ""}: ${a.revoke_reason || "no reason given"}`)),
      el("h3", {}, "Reviews"),
      (r.reviews || []).length ? el("div", { class: "table-wrap" }, el("table", { id: "reviews-table" },
        el("thead", {}, el("tr", {}, ["Time (UTC)", "Reviewer", "Authenticated by", "Decision", "Reference", "Note", "Digest"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, r.reviews.map((v) => el("tr", {},
          el("td", { class: "mono" }, utc(v.at)),
          el("td", {}, v.by.id),
          el("td", {}, [v.by.via, v.by.issuer, v.by.cert && `certificate ${v.by.cert.slice(0, 16)}…`].filter(Boolean).join(", ")),
          el("td", {}, v.decision),
          el("td", {}, v.approval_ref || ""),
          el("td", {}, v.note || ""),
          el("td", { class: "mono", title: v.digest }, v.digest.slice(0, 16) + "…"))))))
        : el("p", { class: "empty" }, a.requester && a.approvers_required ? "No reviews yet." : "Registered directly, without four eyes."),
      el("h3", {}, "The impact guard"),
      (r.yielded || []).length ? el("ul", { class: "yielded" }, r.yielded.map((y) =>
        el("li", {}, `${utc(y.at)} UTC: ${y.action.replace("approval.", "")}: ${y.why} (${y.by})`)))
        : el("p", { class: "empty" }, "The test never had to yield to other tenants."),
      el("h3", {}, "Requests by hour (UTC)"),
      r.hours.length ? el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, ["Hour", "Admitted", "Rate-limited", "Over budget", "Out of scope", "Impact guard", "Test capacity"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, r.hours.map((h) => el("tr", {}, el("td", { class: "mono" }, utc(h.hour).slice(0, 16)),
          el("td", {}, h.allowed), el("td", {}, h.rate_limited), el("td", {}, h.budget_exhausted), el("td", {}, h.out_of_scope),
          el("td", {}, h.platform_busy || 0), el("td", {}, h.capacity_full || 0))))))
        : el("p", { class: "empty" }, "No requests from the approved sources."));
  } catch (e) {
    box.replaceChildren(el("p", { class: "notice bad" }, `The report of ${id} could not be loaded: ${e.message}`));
  }
}

// ---- refresh loop ------------------------------------------------------------

async function refresh() {
  try {
    state.status = await api("GET", "status");
    renderHealth(state.status);
    await loadApprovals();
    if (state.view === "bans") await loadBans();
    if (state.view === "audit") renderChains(state.status.audit);
  } catch (e) {
    const s = $("#store-health");
    s.textContent = "admin API unreachable";
    s.className = "badge bad";
    s.title = e.message;
  }
}

function start() {
  window.addEventListener("hashchange", route);
  $("#register-form").addEventListener("submit", register);
  $("#tenant-filter").addEventListener("change", renderTimeline);
  $("#verify-now").addEventListener("click", verifyNow);
  $("#print-report").addEventListener("click", () => window.print());
  $("#feed-pause").addEventListener("click", (e) => {
    state.paused = !state.paused;
    e.target.setAttribute("aria-pressed", String(state.paused));
    e.target.textContent = state.paused ? "Resume" : "Pause";
  });
  route();
  refresh();
  pollFeed().catch(() => {});
  setInterval(refresh, 2000);
  setInterval(() => pollFeed().catch(() => {}), 1000);
}
start();
