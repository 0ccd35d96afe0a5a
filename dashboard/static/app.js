/* tpsl-guard dashboard: loads the server-rendered fragments (/ui/…) into the page and refreshes
   them, sends the bearer token when the dashboard has one, and drives the create form and the
   remove buttons through the JSON API. Plain JavaScript, no build step, no network but this server. */
(function () {
  "use strict";

  const TOKEN_KEY = "tpsl.dashboard.token";
  const body = document.body;
  const tokenRequired = body.dataset.tokenRequired === "true";
  const statusEl = document.getElementById("status");
  const timers = new Map();
  const openDetails = new Set();
  const detailCache = new Map(); // last markup of each open detail: a table refresh does not blink
  let paused = false; // a remove confirmation is showing: keep the table still
  let authPending = false;

  // ------------------------------------------------------------------------------------ token

  function takeTokenFromUrl() {
    const url = new URL(window.location.href);
    const t = url.searchParams.get("token");
    if (t) {
      localStorage.setItem(TOKEN_KEY, t);
      url.searchParams.delete("token");
      window.history.replaceState(null, "", url.pathname + (url.search ? url.search : "") + url.hash);
    }
  }
  const getToken = () => localStorage.getItem(TOKEN_KEY);

  function forgetToken() {
    localStorage.removeItem(TOKEN_KEY);
    document.getElementById("forget-token").hidden = true;
  }

  class AuthError extends Error {}

  async function api(path, opts) {
    const o = Object.assign({}, opts || {});
    const headers = Object.assign({}, o.headers || {});
    const t = getToken();
    if (t) headers["Authorization"] = "Bearer " + t;
    o.headers = headers;
    const res = await fetch(path, o);
    if (res.status === 401) {
      askForToken(t ? "The token was refused." : "");
      throw new AuthError("unauthorized");
    }
    return res;
  }

  function askForToken(message) {
    if (getToken()) forgetToken();
    const dialog = document.getElementById("token-dialog");
    document.getElementById("token-error").textContent = message || "";
    if (!dialog.open) {
      authPending = true;
      dialog.showModal();
      document.getElementById("token-input").focus();
    }
  }

  document.getElementById("token-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const input = document.getElementById("token-input");
    const value = input.value.trim();
    if (!value) return;
    localStorage.setItem(TOKEN_KEY, value);
    const res = await fetch("/api/accounts", { headers: { Authorization: "Bearer " + value } });
    if (res.status === 401) {
      localStorage.removeItem(TOKEN_KEY);
      document.getElementById("token-error").textContent = "The token was refused.";
      input.select();
      return;
    }
    input.value = "";
    authPending = false;
    document.getElementById("token-dialog").close();
    document.getElementById("forget-token").hidden = false;
    loadAll();
  });

  document.getElementById("forget-token").addEventListener("click", function () {
    forgetToken();
    askForToken("");
  });

  // -------------------------------------------------------------------------------- fragments

  function setStatus(ok, text) {
    statusEl.textContent = text;
    statusEl.className = "status " + (ok ? "ok" : "bad");
  }

  async function load(el) {
    if (authPending) return;
    try {
      const res = await api(el.dataset.src);
      const html = await res.text();
      if (!res.ok) {
        el.dataset.failed = "true";
        setStatus(false, "error " + res.status + " on " + el.dataset.src);
        return;
      }
      el.innerHTML = html;
      el.dataset.failed = "";
      setStatus(true, "live · " + new Date().toLocaleTimeString());
      if (el.id === "monitors") restoreDetails();
    } catch (e) {
      if (!(e instanceof AuthError)) setStatus(false, "connection lost");
    }
  }

  function schedule(el) {
    const every = parseFloat(el.dataset.every || "0");
    if (!(every > 0) || timers.has(el)) return;
    timers.set(
      el,
      setInterval(function () {
        if (document.hidden || authPending) return;
        if (paused && el.id === "monitors") return;
        load(el);
      }, every * 1000)
    );
  }

  function loadAll() {
    document.querySelectorAll("[data-src]").forEach(function (el) {
      load(el);
      schedule(el);
    });
    refreshDetails();
  }

  // ---------------------------------------------------------------------- monitor details

  async function loadDetail(id) {
    const box = document.querySelector('[data-detail="' + CSS.escape(id) + '"]');
    if (!box) return;
    try {
      const res = await api("/ui/monitors/" + encodeURIComponent(id));
      box.innerHTML = res.ok ? await res.text() : '<p class="err">Could not load this monitor (' + res.status + ").</p>";
      if (res.ok) detailCache.set(id, box.innerHTML);
    } catch (e) {
      /* the status line says it */
    }
  }

  function showDetail(id, open) {
    const row = document.querySelector('tr.monitor-row[data-monitor="' + CSS.escape(id) + '"]');
    const detail = document.querySelector('tr[data-detail-for="' + CSS.escape(id) + '"]');
    if (!row || !detail) return false;
    detail.hidden = !open;
    row.classList.toggle("open", open);
    return true;
  }

  function toggleDetail(id) {
    if (openDetails.has(id)) {
      openDetails.delete(id);
      detailCache.delete(id);
      showDetail(id, false);
    } else {
      openDetails.add(id);
      showDetail(id, true);
      loadDetail(id);
    }
  }

  function restoreDetails() {
    openDetails.forEach(function (id) {
      if (!showDetail(id, true)) return;
      const box = document.querySelector('[data-detail="' + CSS.escape(id) + '"]');
      if (box && detailCache.has(id)) box.innerHTML = detailCache.get(id);
    });
  }

  function refreshDetails() {
    openDetails.forEach(loadDetail);
  }
  setInterval(function () {
    if (!document.hidden && !authPending) refreshDetails();
  }, 4000);

  document.addEventListener("click", function (ev) {
    const remove = ev.target.closest("[data-remove-monitor]");
    if (remove) {
      ev.stopPropagation();
      confirmRemove(remove);
      return;
    }
    if (ev.target.closest(".confirm")) return;
    const link = ev.target.closest("[data-monitor-link]");
    if (link) {
      const id = link.dataset.monitorLink;
      const row = document.querySelector('tr.monitor-row[data-monitor="' + CSS.escape(id) + '"]');
      if (row) {
        if (!openDetails.has(id)) toggleDetail(id);
        row.scrollIntoView({ behavior: "smooth", block: "center" });
      }
      return;
    }
    const row = ev.target.closest("tr.monitor-row");
    if (row) toggleDetail(row.dataset.monitor);
  });
  document.addEventListener("keydown", function (ev) {
    const row = ev.target.closest && ev.target.closest("tr.monitor-row");
    if (row && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      toggleDetail(row.dataset.monitor);
    }
  });

  // ---------------------------------------------------------------------------------- remove

  function confirmRemove(button) {
    const id = button.dataset.removeMonitor;
    const cell = button.parentElement;
    const saved = cell.innerHTML;
    paused = true;
    cell.innerHTML =
      '<span class="confirm">Remove ' + escapeHtml(button.dataset.symbol || id) + "? " +
      '<button type="button" class="danger small" data-act="cancel">and cancel its orders</button>' +
      '<button type="button" class="ghost small" data-act="leave">leave orders</button>' +
      '<button type="button" class="icon" data-act="back" title="Keep it">×</button></span>';
    cell.querySelector(".confirm").addEventListener("click", async function (ev) {
      ev.stopPropagation();
      const act = ev.target.dataset.act;
      if (!act) return;
      if (act === "back") {
        cell.innerHTML = saved;
        paused = false;
        return;
      }
      cell.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      try {
        const res = await api(
          "/api/monitors/" + encodeURIComponent(id) + "?cancel_orders=" + (act === "cancel" ? "true" : "false"),
          { method: "DELETE" }
        );
        if (!res.ok) {
          const err = await errorOf(res);
          cell.innerHTML = '<span class="err">' + escapeHtml(err.message) + "</span>";
        }
      } catch (e) {
        /* 401: the token dialog shows */
      }
      paused = false;
      openDetails.delete(id);
      load(document.getElementById("monitors"));
      load(document.getElementById("events"));
    });
  }

  // ---------------------------------------------------------------------------------- create

  const form = document.getElementById("create-form");
  const result = document.getElementById("create-result");
  let mode = "fields";

  const EXAMPLE = {
    account: (form.account && form.account.value) || "main",
    symbol: "BTCUSDT",
    side: "Buy",
    preset: "conservative",
    entries: [
      { price: "60000", qty: "0.010" },
      { price: "59500", qty: "0.010" },
      { price: "59000", qty: "0.010" },
    ],
    take_profits: [
      { price: "62000", fraction: "0.85" },
      { price: "63000", fraction: "0.05" },
      { price: "64000", fraction: "0.05" },
      { price: "65000", fraction: "0.05" },
    ],
    stop_loss: "58000",
    breakeven_after: 1,
    mirror: true,
  };
  form.json.value = JSON.stringify(EXAMPLE, null, 2);

  function addRow(kind) {
    const tpl = document.getElementById(kind === "entry" ? "entry-row" : "tp-row");
    const container = document.getElementById(kind === "entry" ? "entry-rows" : "tp-rows");
    if (container.children.length >= 10) return;
    container.appendChild(tpl.content.cloneNode(true));
    renumber(container, kind);
  }

  function renumber(container, kind) {
    const base = kind === "entry" ? "entries" : "take_profits";
    const label = kind === "entry" ? "E" : "TP";
    Array.from(container.children).forEach(function (row, i) {
      row.querySelector(".level-name").textContent = label + (i + 1);
      row.dataset.errFor = base + "[" + i + "]";
      row.querySelectorAll("input[data-part]").forEach(function (input) {
        input.dataset.field = base + "[" + i + "]." + input.dataset.part;
      });
    });
  }

  form.addEventListener("click", function (ev) {
    const add = ev.target.closest("[data-add]");
    if (add) {
      addRow(add.dataset.add);
      return;
    }
    const rm = ev.target.closest("[data-remove]");
    if (rm) {
      const container = rm.closest(".levels");
      rm.closest(".level").remove();
      renumber(container, container.id === "entry-rows" ? "entry" : "tp");
    }
  });

  form.addEventListener("change", function (ev) {
    if (ev.target.name === "entry_mode") {
      form.querySelectorAll("[data-mode]").forEach(function (el) {
        el.hidden = el.dataset.mode !== ev.target.value;
      });
    }
  });

  document.querySelectorAll(".tab").forEach(function (tab) {
    tab.addEventListener("click", function () {
      mode = tab.dataset.tab;
      document.querySelectorAll(".tab").forEach(function (t) { t.classList.toggle("active", t === tab); });
      form.querySelectorAll("[data-pane]").forEach(function (p) { p.hidden = p.dataset.pane !== mode; });
      clearErrors();
    });
  });

  function rowValues(id) {
    return Array.from(document.getElementById(id).children).map(function (row) {
      const out = {};
      row.querySelectorAll("input[data-part]").forEach(function (input) { out[input.dataset.part] = input.value.trim(); });
      return out;
    });
  }

  function buildRequest() {
    const req = { account: form.account.value, symbol: form.symbol.value.trim(), side: form.side.value };
    if (form.preset.value) req.preset = form.preset.value;
    const entryMode = form.querySelector("[name=entry_mode]:checked").value;
    if (entryMode === "adopt") req.adopt = true;
    else if (entryMode === "market") req.entries = { type: "market", qty: form.market_qty.value.trim() };
    else req.entries = rowValues("entry-rows").map(function (r) { return { price: r.price, qty: r.qty }; });
    const tps = rowValues("tp-rows").filter(function (r) { return r.price !== "" || r.fraction !== ""; });
    if (tps.length) {
      req.take_profits = tps.every(function (t) { return t.fraction === ""; })
        ? tps.map(function (t) { return t.price; })
        : tps.map(function (t) { return { price: t.price, fraction: t.fraction }; });
    }
    const sl = form.stop_loss.value.trim();
    if (sl) req.stop_loss = sl;
    const be = form.breakeven_after.value.trim();
    if (be) req.breakeven_after = /^\d+$/.test(be) ? Number(be) : be;
    req.mirror = form.mirror.checked;
    return req;
  }

  function clearErrors() {
    form.querySelectorAll(".err").forEach(function (e) { e.textContent = ""; });
    form.querySelectorAll(".invalid").forEach(function (e) { e.classList.remove("invalid"); });
    result.textContent = "";
    result.className = "result";
  }

  function parentField(f) {
    const m = f.match(/^(.*)(\[\d+\]|\.[^.[\]]+)$/);
    return m ? m[1] : "";
  }

  function showFieldError(field, message) {
    if (mode === "json") {
      const slot = form.querySelector('[data-field="json"]').closest("[data-err-host]").querySelector(".err");
      slot.textContent = (field ? field + ": " : "") + message;
      form.json.classList.add("invalid");
      return true;
    }
    let f = field || "";
    while (f) {
      const sel = CSS.escape(f);
      const input = form.querySelector('[data-field="' + sel + '"]');
      if (input && !input.closest("[hidden]")) {
        input.classList.add("invalid");
        const slot = input.closest("[data-err-host]").querySelector(".err");
        slot.textContent = f === field ? message : field + ": " + message;
        input.focus();
        return true;
      }
      const host = form.querySelector('[data-err-for="' + sel + '"]');
      if (host && !host.closest("[hidden]")) {
        const slot = host.classList.contains("err") ? host : host.querySelector(".err");
        slot.textContent = f === field ? message : field + ": " + message;
        return true;
      }
      f = parentField(f);
    }
    return false;
  }

  async function errorOf(res) {
    try {
      const body = await res.json();
      if (body && body.error) return body.error;
    } catch (e) {
      /* not JSON */
    }
    return { code: "http_" + res.status, message: "the server answered " + res.status, field: null };
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    clearErrors();
    let payload;
    if (mode === "json") {
      payload = form.json.value;
      try {
        JSON.parse(payload);
      } catch (e) {
        showFieldError("", "not valid JSON: " + e.message);
        return;
      }
    } else {
      payload = JSON.stringify(buildRequest());
    }
    const submit = document.getElementById("create-submit");
    submit.disabled = true;
    result.textContent = "placing orders…";
    try {
      const res = await api("/api/monitors", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: payload,
      });
      if (res.status === 201) {
        const m = await res.json();
        result.className = "result ok";
        result.textContent = "Monitor " + m.id + " created: " + m.symbol + " " + m.side + ", " + m.phase.replace("_", " ") + ".";
        load(document.getElementById("monitors"));
        load(document.getElementById("events"));
        load(document.getElementById("accounts"));
      } else {
        const err = await errorOf(res);
        result.className = "result bad";
        const placed = showFieldError(err.field, err.message);
        result.textContent = placed ? "Fix the field marked above." : err.message;
        if (res.status === 503) result.textContent = err.message + " (retry in a moment)";
      }
    } catch (e) {
      if (!(e instanceof AuthError)) {
        result.className = "result bad";
        result.textContent = "The dashboard did not answer.";
      }
    } finally {
      submit.disabled = false;
    }
  });

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  // ------------------------------------------------------------------------------------ start

  addRow("entry");
  addRow("tp");
  takeTokenFromUrl();
  if (getToken()) document.getElementById("forget-token").hidden = false;
  if (tokenRequired && !getToken()) {
    askForToken(""); // loadAll runs once the token is accepted
  } else {
    loadAll();
  }
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !authPending) document.querySelectorAll("[data-src]").forEach(load);
  });
})();
