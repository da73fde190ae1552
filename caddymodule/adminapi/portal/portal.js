// The tenant portal's page: it files requests and lists the tenant's own
// through ./requests, relative to where the page is mounted. Every value
// shown is set as text, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);

async function call(method, url, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(url, init);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new Error(data.error || resp.status + " " + resp.statusText);
  }
  return data;
}

function list(s) {
  return s.split(/[\s,]+/).map((x) => x.trim()).filter((x) => x !== "");
}

function utc(local) {
  return local ? new Date(local + "Z").toISOString().replace(".000Z", "Z") : "";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function day(t) {
  return t ? t.replace("T", " ").replace(/:00Z$/, "Z") : "";
}

async function refresh() {
  const tbody = $("#list tbody");
  let items;
  try {
    items = await call("GET", "requests");
  } catch (err) {
    $("#token").textContent = err.message;
    return;
  }
  tbody.replaceChildren();
  for (const a of items) {
    const row = document.createElement("tr");
    row.dataset.id = a.id;
    cell(row, a.id);
    cell(row, a.status);
    cell(row, (a.sources || []).join(", "));
    cell(row, day(a.not_before) + " – " + day(a.not_after));
    cell(row, a.max_rps + "/s");
    cell(row, (a.usage ? a.usage.allowed : 0) + " of " + a.max_requests);
    cell(row, a.requested_by || "");
    cell(row, a.approved_by || "");
    const act = cell(row, "");
    if (a.require_token && !a.token_issued && (a.status === "scheduled" || a.status === "active")) {
      const b = document.createElement("button");
      b.textContent = "Get the test token";
      b.className = "get-token";
      b.addEventListener("click", () => takeToken(a.id));
      act.appendChild(b);
    }
    tbody.appendChild(row);
  }
}

async function takeToken(id) {
  try {
    const got = await call("POST", "requests/" + encodeURIComponent(id) + "/token");
    $("#token").textContent = "Test token for " + id + " (shown once; send it as Proxy-Authorization: Gatekeeper <token>): " + got.token;
  } catch (err) {
    $("#token").textContent = err.message;
  }
  refresh();
}

$("#request").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = ev.target.elements;
  const body = {
    sources: list(f.sources.value),
    not_before: utc(f.not_before.value),
    not_after: utc(f.not_after.value),
    max_rps: Number(f.max_rps.value),
    max_requests: Number(f.max_requests.value),
    require_token: f.require_token.checked,
  };
  for (const k of ["hosts", "paths"]) {
    if (f[k].value.trim() !== "") body[k] = list(f[k].value);
  }
  for (const k of ["contact", "notes"]) {
    if (f[k].value.trim() !== "") body[k] = f[k].value.trim();
  }
  try {
    const a = await call("POST", "requests", body);
    $("#ask-result").textContent = "Request " + a.id + " filed: it waits for the security team's approval.";
    ev.target.reset();
  } catch (err) {
    $("#ask-result").textContent = err.message;
  }
  refresh();
});

refresh();
