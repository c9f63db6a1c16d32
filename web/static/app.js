// meshdrive web app: plain JS, no build step. Every request goes to the
// drive's own API (/api/v1/) with the session from the login address, kept
// in this origin's localStorage and sent as "Authorization: Session S".
// No cookie: cookies are not kept apart by port, so another local server
// would receive it. A download link gets a single-use ticket instead.
"use strict";

const $ = (id) => document.getElementById(id);
const API = "/api/v1/";

// el builds an element; text goes in as text, never as HTML.
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

// Paths: the page keeps every path as the API writes an entry's href,
// each segment %-encoded from the name's bytes ("docs/caf%E9.txt"), and
// puts that form in addresses, in the hash and in JSON bodies (the
// *_href fields). Linux names are bytes: a name that is not UTF-8
// (Latin-1 from an old archive) has no exact form as a JS string, so the
// page never turns a path into text and back; text is only for showing
// (U+FFFD for a byte that is not UTF-8). See docs/API.md.
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;
// segBytes is the bytes a segment of an address stands for: %XX is one
// byte; anything else (a "%" without two hex digits too) its UTF-8.
function segBytes(seg) {
  const out = [], utf8 = new TextEncoder();
  for (let i = 0; i < seg.length;) {
    if (seg[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(seg.slice(i + 1, i + 3))) {
      out.push(parseInt(seg.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    const ch = String.fromCodePoint(seg.codePointAt(i));
    out.push(...utf8.encode(ch));
    i += ch.length;
  }
  return Uint8Array.from(out);
}
const escBytes = (b) => Array.from(b, (x) => x < 128 && UNRESERVED.test(String.fromCharCode(x)) ? String.fromCharCode(x)
  : "%" + x.toString(16).toUpperCase().padStart(2, "0")).join("");
const escName = (name) => escBytes(new TextEncoder().encode(name)); // a name typed in the page
const segsOf = (href) => href.split("/").filter(Boolean);
// canon writes a path from an address (the hash, which a person may type)
// the page's one way, so two spellings of a folder compare equal.
const canon = (href) => segsOf(href).map((g) => escBytes(segBytes(g))).join("/");
const showSeg = (seg) => new TextDecoder().decode(segBytes(seg));
const showPath = (href) => segsOf(href).map(showSeg).join("/");
const hrefOfText = (p) => segsOf(p).map(escName).join("/"); // a path the API gave as text (no *_href: it is UTF-8)
const joinHref = (dir, seg) => (dir ? dir + "/" : "") + seg;
const parentHref = (href) => segsOf(href).slice(0, -1).join("/");
// An entry's address: href is its path %-encoded from its bytes. A name
// that is not UTF-8 shows with U+FFFD in name and path, which name
// another file or none; href names this one.
const hrefOf = (e) => e.href ?? hrefOfText(e.path);

function bytes(n) {
  if (n === undefined || n === null || n < 0) return "unknown";
  const u = ["bytes", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + " " + u[i];
}
function duration(s) {
  if (s < 0 || !isFinite(s)) return "unknown";
  if (s < 60) return Math.max(1, Math.round(s)) + " s";
  if (s < 3600) return Math.round(s / 60) + " min";
  if (s < 86400) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " days";
}
function when(t) {
  const d = new Date(t);
  if (isNaN(d)) return "";
  const now = new Date();
  const same = d.toDateString() === now.toDateString();
  return same ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}
const plural = (n, one, many) => n + " " + (n === 1 ? one : (many || one + "s"));

class APIError extends Error {
  constructor(status, msg) { super(msg); this.status = status; }
}

const SESSION = "meshdrive-session";
let memSession = ""; // when the browser keeps no storage for this page
const session = () => { try { return localStorage.getItem(SESSION) || memSession; } catch { return memSession; } };
// signedOut shows that this page has no access. It forgets the session it
// sent only if no other tab has stored a new one since.
function signedOut(sent) {
  try { if (localStorage.getItem(SESSION) === sent) localStorage.removeItem(SESSION); } catch { /* storage off */ }
  if (memSession === sent) memSession = "";
  $("gone").hidden = false;
}
// Another tab logged in: this one has access again.
window.addEventListener("storage", (ev) => {
  if (ev.key === SESSION && ev.newValue) { $("gone").hidden = true; show(); refreshStatus(); }
});

// logIn trades the code of a login address (/login sent the browser to
// /#login=CODE) for a session, and takes the code out of the address.
async function logIn() {
  const m = location.hash.match(/^#login=([^&]*)$/);
  if (!m) return;
  history.replaceState(null, "", "/#/files/");
  let r;
  try {
    r = await fetch("/login", { method: "POST", credentials: "omit", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: decodeURIComponent(m[1]) }) });
  } catch (e) { return; }
  const data = await r.json().catch(() => null);
  if (r.ok && data && data.session) {
    memSession = data.session;
    try { localStorage.setItem(SESSION, data.session); } catch { /* storage off: this tab only */ }
  }
}

async function api(method, path, body) {
  const sent = session();
  const opts = { method, credentials: "omit", headers: { Authorization: "Session " + sent } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(API + path, opts);
  } catch (e) {
    throw new APIError(0, "The drive is not answering: is it still mounted? (meshdrive status)");
  }
  if (r.status === 401) { signedOut(sent); throw new APIError(401, "Signed out"); }
  if (r.status === 204) return null;
  let data = null;
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new APIError(r.status, (data && data.error) || ("The drive answered " + r.status + " " + r.statusText));
  return data;
}

let toastTimer;
function toast(msg, bad) {
  const t = $("toast");
  t.textContent = msg;
  t.className = "toast" + (bad ? " bad" : "");
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.hidden = true; }, bad ? 8000 : 3500);
}
const fail = (e) => { if (e.status !== 401) toast(e.message, true); };

// ask shows a small dialog; it resolves to the text typed (or true), or null.
function ask(title, text, value, okLabel) {
  return new Promise((resolve) => {
    $("modal-title").textContent = title;
    $("modal-text").textContent = text || "";
    const input = $("modal-input");
    input.hidden = value === undefined;
    input.value = value || "";
    $("modal-ok").textContent = okLabel || "OK";
    $("modal").hidden = false;
    if (!input.hidden) { input.focus(); input.select(); } else $("modal-ok").focus();
    const done = (v) => { $("modal").hidden = true; $("modal-form").onsubmit = null; $("modal-cancel").onclick = null; resolve(v); };
    $("modal-form").onsubmit = (ev) => { ev.preventDefault(); done(input.hidden ? true : input.value.trim()); };
    $("modal-cancel").onclick = () => done(null);
  });
}

// --- States -----------------------------------------------------------

const STATE = {
  local: ["warn", "Local only", "Written on this computer; not yet on the grid"],
  degraded: ["warn", "Degraded", "On the grid with fewer shards than it should have; repair is owed"],
  durable: ["ok", "On the grid", "Stored on the grid with every shard: it survives losing this computer"],
  lost: ["bad", "Lost", "Some of its data is nowhere: reading it fails. Restore the file from a copy, or delete it"],
};
function stateBadge(s) {
  const [cls, label, title] = STATE[s] || ["muted", s, ""];
  return el("span", { class: "pill " + cls, title }, label);
}
function cacheBadge(c) {
  if (c === "fully") return el("span", { class: "pill info", title: "Every block is on this computer: it opens without the network" }, "Cached");
  if (c === "partly") return el("span", { class: "pill muted", title: "Some blocks are on this computer" }, "Partly cached");
  return null;
}

// --- Routing ----------------------------------------------------------

// route.href is the folder shown, as an href (each segment %-encoded from
// its bytes, like the hash: "100%" is 100%25, "a%2Fb" is a%252Fb, the
// Latin-1 "\xe9" is %E9).
let route = { view: "files", href: "", snap: "" };
const decSeg = (s) => { try { return decodeURIComponent(s); } catch { return s; } };
function parseRoute() {
  const h = location.hash.slice(1) || "/files/";
  const parts = h.split("/").filter((x, i) => i > 0);
  const view = parts[0] || "files";
  if (view === "snap") return { view: "files", snap: decSeg(parts[1] || ""), href: canon(parts.slice(2).join("/")) };
  if (view === "files") return { view, snap: "", href: canon(parts.slice(1).join("/")) };
  if (view === "check") return { view, snap: "", href: canon(parts.slice(1).join("/")) }; // the folder to check
  return { view, snap: "", href: "" };
}
function filesHash(href, snap) {
  return snap ? "#/snap/" + encodeURIComponent(snap) + "/" + href : "#/files/" + href;
}

function show() {
  route = parseRoute();
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== "view-" + route.view;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("on", a.dataset.view === route.view || (route.snap && a.dataset.view === "snapshots"));
  if (route.snap) document.querySelector('#nav a[data-view="files"]').classList.remove("on");
  // Check opens on the drive's folder shown last.
  if (route.view === "files") document.querySelector('#nav a[data-view="check"]').href = "#/check/" + (route.snap ? "" : route.href);
  const showCheck = () => { fillCheck(route.href); loadCheck(); };
  ({ files: loadFiles, activity: renderActivity, nodes: renderNodes, snapshots: loadSnapshots, check: showCheck }[route.view] || loadFiles)();
}

// --- Files ------------------------------------------------------------

async function loadFiles() {
  const { href, snap } = route;
  const crumbs = $("crumbs");
  crumbs.replaceChildren(el("li", {}, el("a", { href: filesHash("", snap) }, snap ? "Snapshot " + snap : "My drive")));
  let acc = "";
  for (const seg of segsOf(href)) {
    acc = joinHref(acc, seg);
    crumbs.append(el("li", {}, el("a", { href: filesHash(acc, snap) }, showSeg(seg))));
  }
  $("file-actions").hidden = !!snap;
  const banner = $("snap-banner");
  banner.hidden = !snap;
  if (snap) {
    banner.replaceChildren(el("span", {}, "You are looking at snapshot ", el("b", {}, snap), ", read-only."),
      el("span", { class: "actions" },
        el("button", { class: "btn small", onclick: () => restore(snap, href, "dir") }, href ? "Restore this folder" : "Restore everything"),
        el("a", { class: "btn small", href: filesHash(href, "") }, "Back to the drive")));
  }
  let list;
  try {
    list = await api("GET", "list/" + href + (snap ? "?snapshot=" + encodeURIComponent(snap) : ""));
  } catch (e) {
    $("rows").replaceChildren();
    $("empty").hidden = false;
    $("empty").textContent = e.message;
    return;
  }
  if (route.href !== href || route.snap !== snap) return; // moved on meanwhile
  const rows = list.entries.map((e) => fileRow(e, snap));
  $("rows").replaceChildren(...rows);
  $("empty").hidden = rows.length > 0;
  $("empty").textContent = snap ? "This folder was empty in the snapshot." : "This folder is empty. Drop files here, or use Upload.";
  if (list.truncated) toast("This folder is very large: only the first 10,000 entries are shown.");
  if (list.states_partial) fillStates(list.entries.filter((e) => e.type === "file" && !e.state), href);
}

// fillStates asks for the states a large folder's listing left out, a few
// at a time, while the folder stays open.
async function fillStates(missing, dir) {
  const next = async () => {
    for (let e = missing.shift(); e; e = missing.shift()) {
      if (route.href !== dir || route.snap || route.view !== "files") return;
      let st;
      try { st = await api("GET", "stat/" + hrefOf(e)); } catch (err) { continue; }
      const tr = [...$("rows").children].find((r) => r.dataset.href === hrefOf(e));
      if (tr) tr.replaceWith(fileRow(st, ""));
    }
  };
  await Promise.all([next(), next()]);
}

// Download links: the browser follows them by itself, without the
// session header, so each gets a ticket (an address that needs none, for
// ten minutes) when the pointer or focus reaches it, in time for a click,
// a middle click or the link's menu. A click before the ticket arrives
// waits for it.
function downloadLinks(href, name, links) {
  let exp = 0, pending = null;
  const fresh = () => exp - Date.now() > 60000;
  const ensure = () => {
    if (fresh()) return Promise.resolve();
    if (!pending) {
      pending = api("POST", "ticket", { url: href }).then((t) => {
        exp = Date.parse(t.expires);
        for (const a of links) a.href = t.url;
      }).finally(() => { pending = null; });
    }
    return pending;
  };
  const go = async (ev) => {
    if (fresh()) return; // the link's own address has its ticket
    ev.preventDefault();
    try {
      await ensure();
      const a = el("a", { href: links[0].href, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
    } catch (e) { fail(e); }
  };
  for (const a of links) {
    a.addEventListener("mouseenter", () => ensure().catch(() => {}));
    a.addEventListener("focus", () => ensure().catch(() => {}));
    a.addEventListener("click", go);
    a.addEventListener("auxclick", (ev) => { if (ev.button === 1) go(ev); });
  }
}

function fileRow(e, snap) {
  const isDir = e.type === "dir";
  const q = snap ? "?snapshot=" + encodeURIComponent(snap) : "";
  const href = isDir ? filesHash(hrefOf(e), snap) : API + "files/" + hrefOf(e) + q;
  const link = isDir ? el("a", { href }, e.name) : e.type === "file" ? el("a", { href, download: e.name, title: "Download " + e.name }, e.name)
    : el("span", { class: "n", title: e.target ? "Link to " + e.target : "" }, e.name);
  const icon = el("span", { class: "fi " + (isDir ? "dir" : e.type === "symlink" ? "link" : "file"), "aria-hidden": "true" });
  const badges = el("div", { class: "badges" });
  if (!snap && e.state) badges.append(stateBadge(e.state));
  // A file not yet uploaded is only here anyway: "cached" says nothing.
  if (!snap && e.cached && e.state !== "local") { const c = cacheBadge(e.cached); if (c) badges.append(c); }
  if (e.pinned === true) badges.append(el("span", { class: "pill info", title: "Kept on this computer" }, "Pinned"));
  if (e.pending_bytes > 0 && e.state === "local") badges.title = bytes(e.pending_bytes) + " still to upload";
  const acts = el("td", { class: "c-act" });
  const dlBtn = !snap && e.type === "file" ? el("a", { class: "btn small hide-phone", href, download: e.name }, "Download") : null;
  if (e.type === "file") downloadLinks(href, e.name, dlBtn ? [link, dlBtn] : [link]);
  if (snap) {
    acts.append(el("button", { class: "btn small", onclick: () => restore(snap, hrefOf(e), e.type) }, "Restore"));
  } else {
    if (e.type === "file") acts.append(dlBtn, " ");
    acts.append(el("button", { class: "btn small", title: "Rename", onclick: () => rename(e) }, "Rename"), " ",
      el("button", { class: "btn small danger", title: "Delete", onclick: () => remove(e) }, "Delete"));
  }
  // On a phone the size, date and state columns fold into a line under the name.
  const sub = el("div", { class: "sub" }, isDir ? "Folder" : bytes(e.size), " · ", when(e.mtime), badges.cloneNode(true));
  return el("tr", { "data-name": e.name, "data-href": hrefOf(e) },
    el("td", { class: "c-name" }, el("div", { class: "name" }, icon, el("div", { class: "nm" }, link, sub))),
    el("td", { class: "c-size" }, isDir ? "" : bytes(e.size)),
    el("td", { class: "c-date" }, when(e.mtime)),
    el("td", { class: "c-state" }, badges),
    acts);
}

async function rename(e) {
  const name = await ask("Rename", "New name for " + e.name, e.name, "Rename");
  if (!name || name === e.name) return;
  if (name.includes("/")) { toast("A name cannot hold a slash.", true); return; }
  const from = hrefOf(e);
  try {
    await api("POST", "rename", { from_href: from, to_href: joinHref(parentHref(from), escName(name)) });
    toast("Renamed to " + name);
    loadFiles();
  } catch (err) { fail(err); }
}

async function remove(e) {
  const what = e.type === "dir" ? "the folder " + e.name + " and everything in it" : e.name;
  if (!(await ask("Delete", "Delete " + what + "? Snapshots keep their copies.", undefined, "Delete"))) return;
  try {
    await api("DELETE", "files/" + hrefOf(e) + (e.type === "dir" ? "?recursive=1" : ""));
    toast("Deleted " + e.name);
    loadFiles();
  } catch (err) { fail(err); }
}

$("btn-mkdir").onclick = async () => {
  const name = await ask("New folder", "Name of the new folder", "New folder", "Create");
  if (!name) return;
  // A slash would make a folder inside another one (or fail as missing).
  if (name.includes("/")) { toast("A name cannot hold a slash.", true); return; }
  try {
    await api("POST", "mkdir/" + joinHref(route.href, escName(name)));
    loadFiles();
  } catch (err) { fail(err); }
};

// restore copies href (a path in the snapshot) back into the drive.
async function restore(snap, href, type) {
  const what = href ? "/" + showPath(href) : "the whole drive";
  if (!(await ask("Restore from " + snap, "Copy " + what + " as it was in snapshot " + snap +
    " back into the drive. If something is there now, the copy is put beside it.", undefined, "Restore"))) return;
  toast("Restoring " + what + " from " + snap + "…");
  try {
    const r = await api("POST", "restore", { snapshot: snap, path_href: href });
    toast("Restored " + plural(r.files, "file") + " (" + bytes(r.bytes) + ") to " + r.to +
      (r.skipped ? "; not restored (sockets and devices): " + r.skipped.slice(0, 3).join(", ") + (r.skipped.length > 3 ? ", ..." : "") : ""));
    const to = r.to_href ?? hrefOfText(r.to);
    location.hash = filesHash(type === "dir" && !href ? "" : parentHref(to), "");
  } catch (err) { fail(err); }
}

// --- Uploads from this browser ---------------------------------------

const transfers = [];
function renderTransfers() {
  const mk = (t) => {
    const pct = t.total ? Math.min(100, (100 * t.sent) / t.total) : 0;
    const bar = el("div", { class: "meter" + (t.state === "done" ? " done" : "") }, el("div"));
    bar.firstChild.style.width = (t.state === "done" ? 100 : pct) + "%";
    let how;
    if (t.state === "done") how = "Uploaded to the drive — " + bytes(t.total);
    else if (t.state === "failed") how = t.error;
    else {
      const el_ = (Date.now() - t.start) / 1000;
      const rate = el_ > 0.5 ? t.sent / el_ : 0;
      how = bytes(t.sent) + " of " + bytes(t.total) + (rate ? " — " + bytes(rate) + "/s, " + duration((t.total - t.sent) / rate) + " left" : "");
    }
    return el("li", { class: "xfer " + t.state }, el("span", { class: "what" }, "/" + t.path), el("span", { class: "how" }, how), bar);
  };
  $("transfer-list").replaceChildren(...transfers.filter((t) => t.state !== "done" || Date.now() - t.end < 15000).map(mk));
  $("transfers").hidden = $("transfer-list").children.length === 0;
  $("transfer-list-2").replaceChildren(...transfers.slice().reverse().map(mk));
  $("no-transfers").hidden = transfers.length > 0;
}

function uploadFile(file, dir) {
  const to = joinHref(dir, escName(file.name));
  const t = { path: showPath(to), total: file.size, sent: 0, state: "sending", start: Date.now() };
  transfers.push(t);
  renderTransfers();
  return new Promise((resolve) => {
    const x = new XMLHttpRequest();
    x.open("PUT", API + "files/" + to);
    const sent = session();
    x.setRequestHeader("Authorization", "Session " + sent);
    x.upload.onprogress = (ev) => { t.sent = ev.loaded; renderTransfers(); };
    x.onload = () => {
      if (x.status === 201) { t.state = "done"; t.end = Date.now(); t.sent = t.total; }
      else {
        t.state = "failed";
        try { t.error = JSON.parse(x.responseText).error; } catch (e) { t.error = "The drive answered " + x.status; }
        if (x.status === 401) signedOut(sent);
      }
      renderTransfers();
      resolve();
    };
    x.onerror = () => { t.state = "failed"; t.error = "The connection to the drive broke; try again"; renderTransfers(); resolve(); };
    x.send(file);
  });
}

async function uploadFiles(files) {
  const dir = route.href;
  if (route.snap) { toast("Snapshots are read-only: open the drive to upload.", true); return; }
  let list = Array.from(files);
  const here = new Set([...$("rows").children].map((r) => r.dataset.name));
  const clash = list.filter((f) => here.has(f.name));
  if (clash.length) {
    const names = clash.length === 1 ? clash[0].name : plural(clash.length, "file");
    const ok = await ask("Replace?", names + (clash.length === 1 ? " is" : " are") +
      " already in this folder. Replace with the uploaded " + (clash.length === 1 ? "file" : "files") + "? Snapshots keep the old version.", undefined, "Replace");
    if (!ok) list = list.filter((f) => !here.has(f.name));
  }
  for (const f of list) await uploadFile(f, dir);
  if (route.href === dir && route.view === "files") loadFiles();
  const failed = transfers.filter((t) => t.state === "failed").length;
  if (!failed && list.length) toast(plural(list.length, "file") + " uploaded. They reach the grid in the background (see Activity).");
}

$("file-input").onchange = (ev) => { uploadFiles(ev.target.files); ev.target.value = ""; };
(() => {
  const zone = $("drop");
  let depth = 0;
  const hint = (on) => { zone.classList.toggle("over", on); $("drop-hint").hidden = !on; };
  zone.addEventListener("dragenter", (ev) => { if (route.snap) return; ev.preventDefault(); depth++; hint(true); });
  zone.addEventListener("dragover", (ev) => { if (route.snap) return; ev.preventDefault(); ev.dataTransfer.dropEffect = "copy"; });
  zone.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; hint(false); } });
  zone.addEventListener("drop", (ev) => {
    ev.preventDefault(); depth = 0; hint(false);
    const items = ev.dataTransfer.items ? Array.from(ev.dataTransfer.items) : [];
    if (items.some((i) => i.webkitGetAsEntry && i.webkitGetAsEntry() && i.webkitGetAsEntry().isDirectory)) {
      toast("Folders cannot be dropped yet: drop the files, or copy the folder into the mounted drive.", true);
    }
    const files = Array.from(ev.dataTransfer.files).filter((f, i) => !(items[i] && items[i].webkitGetAsEntry && items[i].webkitGetAsEntry() && items[i].webkitGetAsEntry().isDirectory));
    if (files.length) uploadFiles(files);
  });
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
})();

// --- Status, activity, nodes -------------------------------------------

let summary = null;
let statusErr = ""; // why the last status did not come: the drive stopped answering
async function refreshStatus() {
  const top = $("drive-state");
  try { summary = await api("GET", "status"); } catch (e) {
    if (e.status === 401) return;
    // Unmounted, or its process gone: say so, rather than keep showing the
    // last state (which may say everything is safe).
    summary = null;
    statusErr = e.message;
    top.className = "pill bad";
    top.textContent = "Drive not answering";
    top.title = e.message;
    if (route.view === "activity") renderActivity();
    if (route.view === "nodes") renderNodes();
    return;
  }
  statusErr = "";
  top.title = "The state of the whole drive";
  const s = summary;
  const [cls, label] = s.online ? (STATE[s.state] || ["muted", s.state]) : ["bad", "Offline"];
  top.className = "pill " + cls;
  top.textContent = !s.online ? "Offline — working from this computer" : s.state === "durable" ? "All safe on the grid" :
    s.state === "lost" ? "Files lost: see Activity" : s.state === "local" ? "Uploading to the grid" : "Repair owed";
  const q = $("nav-queue");
  q.hidden = !(s.uploads.bytes > 0);
  q.textContent = bytes(s.uploads.bytes);
  const n = $("nav-nodes");
  n.hidden = s.nodes_up === s.nodes_total;
  n.textContent = (s.nodes_total - s.nodes_up) + " down";
  if (route.view === "activity") renderActivity();
  if (route.view === "nodes") renderNodes();
}

function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function renderActivity() {
  renderTransfers();
  const s = summary;
  if (!s) {
    if (statusErr) { $("q-sentence").textContent = statusErr; $("q-facts").replaceChildren(); $("safety-sentence").textContent = ""; }
    return;
  }
  const u = s.uploads;
  let sent;
  if (u.bytes === 0 && u.in_flight_bytes === 0) sent = s.meta_pending_rows > 0 ? "All file data is on the grid; the latest folder changes follow within a minute." : "Nothing waiting: everything written is on the grid.";
  else if (!s.online) sent = bytes(u.bytes) + " in " + plural(u.files, "file") + " waiting. No node is reachable, so uploads resume when one is.";
  else sent = bytes(u.bytes) + " in " + plural(u.files, "file") + " waiting to upload" + (u.rate > 0 ? ", at " + bytes(u.rate) + "/s: about " + duration(u.eta_seconds) + " left." : ".");
  $("q-sentence").textContent = sent;
  const total = u.bytes + u.done_bytes;
  $("q-bar").style.width = (total > 0 ? (100 * u.done_bytes) / total : 100) + "%";
  const rows = [["Waiting", bytes(u.bytes)], ["Uploaded since mount", bytes(u.done_bytes)], ["Rate", u.rate > 0 ? bytes(u.rate) + "/s" : "idle"],
    ["Time left", u.bytes > 0 ? duration(u.eta_seconds) : "—"]];
  if (u.queue_age_seconds > 0) rows.push(["Waiting for", duration(u.queue_age_seconds)]);
  if (u.errors > 0) rows.push(["Failed attempts", String(u.errors)]);
  facts($("q-facts"), rows);
  if (u.last_error && u.bytes > 0) $("q-sentence").append(el("p", { class: "err" }, "Last problem: " + u.last_error));
  const c = s.cache;
  $("cache-sentence").textContent = c.hit_rate < 0 ? "Nothing read yet." :
    Math.round(c.hit_rate * 100) + "% of reads were served from this computer.";
  // journal_reads: local copies of files written here (absent from an older drive).
  facts($("cache-facts"), [["In memory", bytes(c.mem_bytes)], ["On disk", bytes(c.disk_bytes)], ["Reads from cache", String(c.hits)],
    ["Reads of files written here", String(c.journal_reads || 0)], ["Reads from the grid", String(c.misses)]]);
  let safety;
  if (s.state === "durable") safety = "Every file is stored as " + (s.k + s.m) + " shards on the nodes; any " + s.k + " of them rebuild it, so " + plural(s.m, "node") + " can be lost.";
  else if (s.state === "lost") safety = "Not everything is safe.";
  else if (s.state === "degraded") safety = plural(s.repair_owed, "segment") + " on the grid lack shards. Repair runs in the background; you can start one under Check.";
  else safety = "Some recent changes exist only on this computer until they are uploaded.";
  if (s.lost) safety += " " + plural(s.lost.blocks, "block") + " of " + plural(s.lost.files, "file") +
    " cannot be read from anywhere (" + (s.lost.paths || []).slice(0, 3).join(", ") + (s.lost.files > 3 ? ", ..." : "") +
    "): restore those files from a copy, or delete them.";
  $("safety-sentence").textContent = safety;
}

function renderNodes() {
  const s = summary;
  if (!s) {
    if (!statusErr) { refreshStatus(); return; }
    $("nodes-sentence").textContent = statusErr;
    $("node-cards").replaceChildren();
    return;
  }
  const down = s.nodes_total - s.nodes_up;
  $("nodes-sentence").textContent = down === 0 ? "All " + plural(s.nodes_total, "node") + " are up." :
    plural(down, "node") + " of " + s.nodes_total + (down === 1 ? " is" : " are") + " down. " +
    (s.nodes_up >= s.k ? "Every file still reads; new data waits or is stored with fewer shards until " + (down === 1 ? "it comes" : "they come") + " back." :
      "Fewer than " + s.k + " nodes are up: files that are not cached cannot be read until more come back.");
  $("node-cards").replaceChildren(...s.nodes.map((n) => {
    const used = n.capacity > 0 && n.free >= 0 ? n.capacity - n.free : -1;
    const meter = el("div", { class: "meter" }, el("div"));
    meter.firstChild.style.width = (used >= 0 ? (100 * used) / n.capacity : 0) + "%";
    const card = el("div", { class: "card" + (n.up ? "" : " down"), "data-node": n.name },
      el("div", { class: "node-head" }, el("h2", {}, n.name),
        n.up ? el("span", { class: "pill ok" }, n.draining ? "Up, draining" : "Up") : el("span", { class: "pill bad" }, "Down")),
      n.zone ? el("p", { class: "muted" }, "Zone " + n.zone) : null,
      n.up && n.capacity > 0 ? meter : null);
    const dl = el("dl", { class: "facts" });
    facts(dl, n.up ? [["Answers in", n.latency_ms.toFixed(1) + " ms"], ["Objects held", n.shards < 0 ? "still counting" : String(n.shards)],
      ["Free", n.free >= 0 ? bytes(n.free) + (n.capacity > 0 ? " of " + bytes(n.capacity) : "") : "unknown"]] : []);
    card.append(dl);
    if (!n.up) card.append(el("p", { class: "err" }, "Not answering: " + (n.error || "no reply") + ". Start the node again, or replace it with meshdrive node add and node remove."));
    return card;
  }));
}

// --- Snapshots ----------------------------------------------------------

async function loadSnapshots() {
  let ss;
  try { ss = await api("GET", "snapshots"); } catch (e) { fail(e); return; }
  const list = $("snap-list");
  if (!ss.length) {
    list.replaceChildren(el("li", {}, el("span", { class: "muted" }, "No snapshots yet. The first one is taken automatically within a minute of the first change, or take one now.")));
    return;
  }
  list.replaceChildren(...ss.slice().reverse().map((s) => el("li", { "data-snap": s.name },
    el("div", {}, el("div", { class: "title" }, s.name), el("div", { class: "muted" },
      new Date(s.created).toLocaleString() + " — " + (s.named ? "kept until deleted" : "kept by the retention schedule"))),
    el("a", { class: "btn small", href: filesHash("", s.name) }, "Browse and restore"))));
}

$("btn-snap").onclick = async () => {
  const name = await ask("Take a snapshot", "A name keeps the snapshot until you delete it. Leave it empty for an automatic one.", "", "Take snapshot");
  if (name === null) return;
  try {
    const s = await api("POST", "snapshots", name ? { name } : {});
    toast("Snapshot " + s.name + " taken.");
    loadSnapshots();
  } catch (e) { fail(e); }
};

// --- Check --------------------------------------------------------------

let checkTimer, checkSeq = 0;
// checkHref is the path the check form was filled with, as an href, and
// checkShown the text it shows for it: a folder whose name is not UTF-8
// shows with U+FFFD, which names another folder or none, so while the
// text is unchanged the form sends the href; text typed in is UTF-8.
let checkHref = "", checkShown = "";
function fillCheck(href) {
  checkHref = href;
  checkShown = href ? "/" + showPath(href) : "";
  $("check-path").value = checkShown;
}
async function loadCheck() {
  const seq = ++checkSeq;
  let st;
  try { st = await api("GET", "check"); } catch (e) { return; }
  if (seq === checkSeq) renderCheck(st); // an answer older than a newer request is stale
}

function renderCheck(st) {
  clearTimeout(checkTimer);
  if (!st.started) { $("check-status").hidden = true; $("btn-check").disabled = false; return; }
  $("check-status").hidden = false;
  $("btn-check").disabled = st.running;
  const p = st.progress || {};
  const pct = st.running ? (p.total > 0 ? (100 * p.done) / p.total : 2) : 100;
  $("check-bar").style.width = pct + "%";
  $("check-bar").parentElement.classList.toggle("done", !st.running && !st.error);
  $("check-title").textContent = (st.repair ? "Check and repair of " : "Check of ") + (st.path === "/" ? "the whole drive" : st.path);
  const files = $("check-files");
  files.replaceChildren();
  if (st.running) {
    $("check-sentence").textContent = p.total > 0 ? (p.phase === "repair" ? "Repairing" : "Checking") + ": " + p.done + " of " + plural(p.total, "segment") + "…" : "Starting…";
    checkTimer = setTimeout(loadCheck, 500);
    return;
  }
  if (st.error) { $("check-sentence").textContent = "The check stopped: " + st.error; return; }
  const r = st.report;
  let s = plural(r.segments, "segment") + " checked: " + r.segments_healthy + " healthy";
  if (r.segments_degraded) s += ", " + r.segments_degraded + " missing shards" + (st.repair ? " (repaired where a node had room)" : "");
  if (r.segments_unrecoverable) s += ", " + r.segments_unrecoverable + " unrecoverable";
  s += ". Files: " + r.healthy + " healthy";
  if (r.degraded) s += ", " + r.degraded + " degraded";
  if (r.unrecoverable) s += ", " + r.unrecoverable + " lost (restore them from a snapshot or a copy)";
  for (const a of r.aliases || []) s += ". Warning: node " + a.node + " is the same store as node " + a.same_as + ", so shards on both share one disk; drain " + a.node;
  $("check-sentence").textContent = s + ".";
  for (const f of r.files || []) files.append(el("li", { class: "xfer" }, el("span", { class: "what" }, f.path), el("span", { class: "pill " + (f.state === "unrecoverable" ? "bad" : "warn") }, f.state)));
}

$("check-form").onsubmit = async (ev) => {
  ev.preventDefault();
  try {
    const seq = ++checkSeq;
    const text = $("check-path").value.trim();
    const href = text === checkShown ? checkHref : hrefOfText(text);
    const st = await api("POST", "check", { path_href: href, verify: $("check-verify").checked, repair: $("check-repair").checked });
    if (seq === checkSeq) renderCheck(st);
    checkTimer = setTimeout(loadCheck, 300);
  } catch (e) { fail(e); }
};

// --- Start --------------------------------------------------------------

window.addEventListener("hashchange", show);
(async () => {
  await logIn();
  show();
  refreshStatus();
  setInterval(refreshStatus, 3000);
  setInterval(() => { if (transfers.some((t) => t.state === "sending" || (t.state === "done" && Date.now() - t.end < 16000))) renderTransfers(); }, 1000);
})();
