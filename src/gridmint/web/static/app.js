// GridMint explorer: hash routes, JSON from /api, a block list that grows live, an SVG chart of incentives.
"use strict";

const view = document.getElementById("view");
let liveTimer = null;
let lastHeight = 0;

async function api(path) {
  const response = await fetch("/api/" + path);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

const mint = (grains) => (Number(grains) / 1e9).toLocaleString(undefined, { maximumFractionDigits: 9 }) + " MINT";
const link = (href, text) => `<a href="${href}">${esc(text)}</a>`;
const addr = (a) => (a ? link("#/account/" + a, a) : "");

function table(headers, rows, id) {
  const head = headers.map((h) => `<th>${esc(h)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
  return `<table${id ? ` id="${id}"` : ""}><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function blockRow(b) {
  return [link("#/block/" + b.height, b.height), esc(b.time), b.txs, `<span class="mono">${esc(b.app_hash.slice(0, 16))}…</span>`];
}

async function pageBlocks() {
  const blocks = await api("blocks?limit=20");
  lastHeight = blocks.length ? blocks[0].height : 0;
  view.innerHTML = "<h2>Latest blocks</h2>" + table(["Height", "Time", "Txs", "App hash"], blocks.map(blockRow), "blocks");
  liveTimer = setInterval(async () => {
    const status = await api("status");
    if (status.height <= lastHeight) return;
    const tbody = document.querySelector("#blocks tbody");
    for (let h = lastHeight + 1; h <= status.height; h++) {
      const b = await api("block/" + h);
      const row = document.createElement("tr");
      row.className = "new";
      row.dataset.height = h;
      row.innerHTML = blockRow({ height: h, time: b.time, txs: b.txs.length, app_hash: b.app_hash })
        .map((c) => `<td>${c}</td>`).join("");
      tbody.prepend(row);
      while (tbody.rows.length > 50) tbody.deleteRow(-1);
    }
    lastHeight = status.height;
  }, 1000);
}

function txDetails(t) {
  if (t.error) return `<p class="fail">${esc(t.error)}</p>`;
  const result = t.code === 0 ? '<span class="ok">succeeded</span>'
    : `<span class="fail">failed: ${esc(t.codespace)}/${t.code} ${esc(t.log)}</span>`;
  const messages = t.messages.map((m) => `<li><b>${esc(m.type)}</b> <code>${esc(JSON.stringify(m.fields))}</code></li>`).join("");
  const events = (t.events || []).map((e) => `<li>${esc(e.type)} <code>${esc(JSON.stringify(e.attributes))}</code></li>`).join("");
  return `<p>${link("#/tx/" + t.hash, t.hash)} by ${addr(t.signer)} (nonce ${t.nonce}, fee ${mint(t.fee)}): ${result}</p>
    <ul>${messages}</ul>${events ? `<p>Events</p><ul>${events}</ul>` : ""}`;
}

async function pageBlock(height) {
  const b = await api("block/" + height);
  view.innerHTML = `<h2>Block ${b.height}</h2><p>${esc(b.time)} · proposer <code>${esc(b.proposer)}</code> · app hash <code>${esc(b.app_hash)}</code></p>
    <h3>Transactions (${b.txs.length})</h3>${b.txs.map(txDetails).join("<hr>") || "<p>None.</p>"}
    <h3>Block events</h3><ul>${b.events.map((e) => `<li>${esc(e.type)} <code>${esc(JSON.stringify(e.attributes))}</code></li>`).join("") || "<li>None.</li>"}</ul>`;
}

async function pageTx(hash) {
  const t = await api("tx/" + hash);
  view.innerHTML = `<h2>Transaction</h2><p>In block ${link("#/block/" + t.height, t.height)}</p>` + txDetails(t);
}

async function pageAccount(address) {
  const a = await api("account/" + address);
  const lines = a.credit_lines.map((l) => [addr(l.gateway), mint(l.balance), mint(l.spent), l.expires]);
  view.innerHTML = `<h2>Account</h2><p class="mono">${esc(a.address)}</p><p>Balance <b>${mint(a.balance)}</b> · nonce ${a.nonce}</p>
    ${a.hotkey_of ? `<p>Hotkey of ${addr(a.hotkey_of)}; registered on ${esc(JSON.stringify(a.registered))}</p>` : ""}
    ${lines.length ? "<h3>Credit lines</h3>" + table(["Gateway", "Left", "Spent", "Expires"], lines) : ""}`;
}

async function pageSubnets() {
  const subnets = await api("subnets");
  view.innerHTML = "<h2>Subnets</h2>" + table(["Netuid", "Name", "Modality", "UIDs", "Epoch", "Owner"],
    subnets.map((s) => [link("#/subnet/" + s.netuid, s.netuid), esc(s.name), esc(s.modality), s.n, s.epoch, addr(s.owner)]));
}

function chart(points, uids, key, id) {
  // key: "incentive" (fractions of 1) or "emission" (grains, scaled to the largest value shown)
  const width = 720, height = 220, pad = 30;
  if (!points.length) return "<p>No history yet.</p>";
  const top = key === "incentive" ? 1 : Math.max(1, ...points.flatMap((p) => p[key]));
  const x0 = points[0].height, x1 = points[points.length - 1].height || x0 + 1;
  const sx = (h) => pad + ((h - x0) / Math.max(1, x1 - x0)) * (width - 2 * pad);
  const sy = (v) => height - pad - (v / top) * (height - 2 * pad);
  const colors = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
  const lines = uids.map((uid, i) => {
    const coords = points.filter((p) => uid < p[key].length).map((p) => `${sx(p.height).toFixed(1)},${sy(p[key][uid]).toFixed(1)}`);
    const dots = coords.map((c) => { const [x, y] = c.split(","); return `<circle class="point" cx="${x}" cy="${y}" r="2.5" fill="${colors[i % colors.length]}"/>`; }).join("");
    return `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${coords.join(" ")}"/>${dots}
      <text x="${width - pad + 4}" y="${16 + i * 14}" font-size="11" fill="${colors[i % colors.length]}">UID ${uid}</text>`;
  }).join("");
  const label = key === "incentive" ? "1.0" : mint(top);
  return `<svg id="${id}" width="${width + 60}" height="${height}">
    <line x1="${pad}" y1="${height - pad}" x2="${width - pad}" y2="${height - pad}" stroke="#999"/>
    <line x1="${pad}" y1="${pad}" x2="${pad}" y2="${height - pad}" stroke="#999"/>
    <text x="${pad}" y="${height - 8}" font-size="11">block ${x0}</text><text x="${width - pad - 60}" y="${height - 8}" font-size="11">block ${x1}</text>
    <text x="2" y="${pad - 6}" font-size="11">${esc(label)}</text>${lines}</svg>`;
}

async function pageSubnet(netuid) {
  const [graph, history, committed] = await Promise.all([api("subnet/" + netuid),
    api(`subnet/${netuid}/history?points=20`), api(`subnet/${netuid}/commitments`)]);
  const rows = graph.uids.map((u) => [u.uid, addr(u.hotkey), mint(u.stake), u.permit ? "yes" : "", u.incentive.toFixed(4),
    u.dividends.toFixed(4), mint(u.emission), esc(u.endpoint || ""), esc(u.models.join(", "))]);
  const weights = Object.entries(graph.weights || {}).map(([uid, row]) =>
    `<li>UID ${esc(uid)} sets ${Object.entries(row).map(([to, w]) => `UID ${esc(to)}: ${w}`).join(", ")}</li>`).join("");
  view.innerHTML = `<h2>Subnet ${netuid}</h2><p>Metagraph at block ${graph.block}</p>` +
    table(["UID", "Hotkey", "Stake", "Permit", "Incentive", "Dividends", "Emission", "Endpoint", "Models"], rows, "metagraph") +
    "<h3>Leaderboard</h3>" + table(["Rank", "UID", "Hotkey", "Incentive", "Models"],
      [...graph.uids].filter((u) => u.incentive > 0).sort((a, b) => b.incentive - a.incentive)
        .map((u, i) => [i + 1, u.uid, addr(u.hotkey), u.incentive.toFixed(4), esc(u.models.join(", "))]), "leaderboard") +
    "<h3>Incentive over time</h3>" + chart(history.points, graph.uids.map((u) => u.uid), "incentive", "incentive-chart") +
    "<h3>Emission per epoch over time</h3>" + chart(history.points, graph.uids.map((u) => u.uid), "emission", "emission-chart") +
    (weights ? `<h3>Validators' weights</h3><ul>${weights}</ul>` : "") +
    (committed.commitments.length ? "<h3>Commitments (answer roots, artifact hashes)</h3>" +
      table(["Block", "Epoch", "Hotkey", "Hash", "Data"], committed.commitments.map((c) =>
        [c.block, c.epoch, addr(c.hotkey), `<code>${esc(c.hash)}</code>`, `<code>${esc(c.data)}</code>`]),
        "commitments") : "");
}

async function pageMarket() {
  const m = await api("market");
  view.innerHTML = "<h2>Providers</h2>" + table(["Owner", "Host", "GPUs", "CPU", "Memory", "Region"],
      m.providers.map((p) => [addr(p.owner), esc(p.host_uri), `${p.gpu_count}× ${esc(p.gpu_model || "-")}`, p.cpu_millis / 1000, p.memory_mb + " MB", esc(p.region)])) +
    "<h2>Orders</h2>" + table(["Order", "Tenant", "State", "Max price", "Deposit", "Bids"],
      m.orders.map((o) => [o.id, addr(o.tenant), esc(o.state), mint(o.max_price), mint(o.deposit),
        o.bids.map((b) => `${addr(b.provider)} at ${mint(b.price)}`).join("<br>")])) +
    "<h2>Leases</h2>" + table(["Lease", "Provider", "Price / block", "Open", "Escrow left"],
      m.leases.map((l) => [l.id, addr(l.provider), mint(l.price), l.open ? "yes" : "no", mint(l.escrow.balance)]));
}

async function pageAuthorities() {
  const a = await api("authorities");
  view.innerHTML = "<h2>Authorities</h2>" + table(["Name", "Account", "Power"],
    a.members.map((m) => [esc(m.name), addr(m.account || m.address), m.power])) +
    `<h3>Open proposals</h3><ul>${a.proposals.map((p) => `<li><code>${esc(JSON.stringify(p))}</code></li>`).join("") || "<li>None.</li>"}</ul>`;
}

async function route() {
  clearInterval(liveTimer);
  const [, page, arg] = (location.hash || "#/").split("/");
  try {
    if (page === "block") await pageBlock(arg);
    else if (page === "tx") await pageTx(arg);
    else if (page === "account") await pageAccount(arg);
    else if (page === "subnets") await pageSubnets();
    else if (page === "subnet") await pageSubnet(arg);
    else if (page === "market") await pageMarket();
    else if (page === "authorities") await pageAuthorities();
    else await pageBlocks();
  } catch (error) {
    view.innerHTML = `<p class="fail">${esc(error.message)}</p>`;
  }
}

document.getElementById("search").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const found = await api("search?q=" + encodeURIComponent(document.getElementById("q").value));
    location.hash = found.kind === "none" ? "#/" : `#/${found.kind}/${found.target}`;
  } catch (error) {
    view.innerHTML = `<p class="fail">${esc(error.message)}</p>`;
  }
});

setInterval(async () => {
  try { const s = await api("status"); document.getElementById("tip").textContent = `${s.chain_id} · block ${s.height}`; } catch (e) { /* node restarting */ }
}, 1000);
window.addEventListener("hashchange", route);
route();
