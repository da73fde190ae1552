// The tenant portal's page: it files requests and lists the tenant's own
// through ./requests, relative to where the page is mounted. Plain
// JavaScript under a CSP of 'self': every value is set as text, never as
// HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);

// el makes an element with attributes (on* are listeners) and children.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false || c === "") continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

// call sends a request to the portal's API; a refusal throws an Error with
// the API's message and the HTTP status.
async function call(method, url, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new Error((data && data.error) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    if (resp.status === 429) {
      const wait = Number(resp.headers.get("Retry-After")) || 60;
      err.message = `Too many calls in a minute: wait ${wait} seconds, then try again.`;
    }
    throw err;
  }
  return data;
}

function notice(text, bad) {
  const n = $("#notice");
  n.textContent = text;
  n.className = bad ? "notice bad" : "notice";
  n.hidden = false;
}

const pad = (n) => String(n).padStart(2, "0");
function utc(t) {
  if (!t) return "";
  const d = new Date(t);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}
// local is a time as a datetime-local input shows it, in UTC.
const local = (d) => d.toISOString().slice(0, 16);
// rfc3339 reads a datetime-local input's value as UTC.
const rfc3339 = (v) => (v ? `${v.length === 16 ? `${v}:00` : v}Z` : "");
const lines = (v) => v.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
const symbol = { active: "▶", scheduled: "◷", exhausted: "■", expired: "✓", revoked: "✕", pending: "…", denied: "⊘", lapsed: "⌛" };

// ---- the tenant's requests and approvals ----------------------------------

async function refresh() {
  let items;
  try {
    items = await call("GET", "requests");
  } catch (err) {
    notice(`The list could not be loaded: ${err.message}`, true);
    return;
  }
  items.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  $("#list-empty").hidden = items.length > 0;
  $("#list tbody").replaceChildren(...items.map(row));
}

function row(a) {
  const used = (a.usage && a.usage.allowed) || 0;
  const approvals = (a.reviews || []).filter((r) => r.decision === "approve").length;
  const status = [el("span", { class: `status status-${a.status}` }, `${symbol[a.status] || ""} ${a.status}`)];
  if (a.status === "pending") {
    status.push(el("div", { class: "meta" }, `${approvals} of ${a.approvers_required} approvals; lapses ${utc(a.pending_until)} UTC`));
  }
  if (a.deny_reason) status.push(el("div", { class: "meta" }, `denied: ${a.deny_reason}`));
  if (a.revoke_reason) status.push(el("div", { class: "meta" }, `revoked: ${a.revoke_reason}`));
  const open = a.status === "scheduled" || a.status === "active";
  return el("tr", { "data-id": a.id },
    el("td", { class: "mono" }, a.id),
    el("td", {}, status),
    el("td", { class: "mono" }, (a.sources || []).join(", "),
      (a.hosts || []).length > 0 && el("div", { class: "meta" }, `hosts ${a.hosts.join(", ")}`),
      (a.paths || []).length > 0 && el("div", { class: "meta" }, `paths ${a.paths.join(", ")}`)),
    el("td", { class: "mono" }, `${utc(a.not_before)} to ${utc(a.not_after)}`),
    el("td", {}, `${a.max_rps}/s`),
    el("td", {}, el("meter", { min: 0, max: a.max_requests, value: used, "aria-label": "requests used" }),
      `${used.toLocaleString()} of ${a.max_requests.toLocaleString()}`),
    el("td", {}, `asked by ${a.requested_by}`, a.approved_by && el("div", { class: "meta" }, `approved by ${a.approved_by}`)),
    el("td", {}, a.require_token && open && !a.token_issued &&
      el("button", { type: "button", class: "small primary get-token", onclick: () => takeToken(a.id) }, "Get the test token"),
    a.require_token && a.token_issued && el("span", { class: "meta" }, "token handed out")));
}

// takeToken collects a test token: the API hands it out once, to the
// person who asked for the test.
async function takeToken(id) {
  try {
    const got = await call("POST", `requests/${encodeURIComponent(id)}/token`);
    $("#token-id").textContent = id;
    $("#token-value").textContent = got.token;
    $("#token-box").hidden = false;
    $("#token-copy").focus();
  } catch (err) {
    notice(`The test token of ${id} could not be handed out: ${err.message}`, true);
  }
  await refresh();
}

async function copyToken() {
  const range = document.createRange();
  range.selectNodeContents($("#token-value"));
  getSelection().removeAllRanges();
  getSelection().addRange(range);
  try {
    await navigator.clipboard.writeText($("#token-value").textContent);
    $("#token-copy").textContent = "Copied";
  } catch {
    $("#token-copy").textContent = "Selected: press Ctrl+C";
  }
}

// ---- asking for a test ----------------------------------------------------

function defaults(f) {
  const hour = new Date(Math.ceil(Date.now() / 3600e3) * 3600e3);
  if (!f.not_before.value) f.not_before.value = local(hour);
  if (!f.not_after.value) f.not_after.value = local(new Date(hour.getTime() + 4 * 3600e3));
}

function clearErrors(f) {
  for (const p of f.querySelectorAll(".err")) p.textContent = "";
  for (const i of f.querySelectorAll("[aria-invalid]")) { i.removeAttribute("aria-invalid"); i.removeAttribute("aria-describedby"); }
  $("#form-error").hidden = true;
}

// showFieldError puts the API's error next to the field it names
// (`field "sources[1]": …`), or above the form when it names none of the
// form's fields.
function showFieldError(f, err) {
  const m = /field "([a-z_]+)(?:\[(\d+)\])?"/.exec(err.message);
  const input = m && f.elements[m[1]];
  if (!input) {
    const box = $("#form-error");
    box.textContent = err.message;
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
    return;
  }
  const p = $(`#e-${m[1]}`);
  const what = err.message.slice(m.index + m[0].length).replace(/^:\s*/, "");
  p.textContent = m[2] !== undefined ? `Entry ${Number(m[2]) + 1}: ${what}` : what;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", p.id);
  input.focus();
}

async function ask(ev) {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  const body = {
    sources: lines(f.sources.value),
    not_before: rfc3339(f.not_before.value),
    not_after: rfc3339(f.not_after.value),
    max_rps: Number(f.max_rps.value),
    max_requests: Number(f.max_requests.value),
    require_token: f.require_token.checked,
  };
  for (const k of ["hosts", "paths"]) {
    if (f[k].value.trim() !== "") body[k] = lines(f[k].value);
  }
  for (const k of ["contact", "notes"]) {
    if (f[k].value.trim() !== "") body[k] = f[k].value.trim();
  }
  try {
    const a = await call("POST", "requests", body);
    notice(`Request ${a.id} filed: it waits for the security team's approval (${a.approvers_required} needed).`);
    f.reset();
    defaults(f);
  } catch (err) {
    if (err.status === 429) notice(err.message, true);
    else showFieldError(f, err);
  }
  await refresh();
}

function start() {
  const f = $("#request");
  defaults(f);
  f.addEventListener("submit", ask);
  $("#reload").addEventListener("click", refresh);
  $("#token-copy").addEventListener("click", copyToken);
  refresh();
  // Often enough to see an approval arrive; well within the per-minute bound.
  setInterval(() => { if (!document.hidden) refresh(); }, 15000);
}
start();
