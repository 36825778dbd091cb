/* Switchboard web widget: one script tag, no dependencies.
 *
 *   <script src="https://HOST/widget.js" data-key="PUBLIC_KEY" async></script>
 *
 * Optional attributes for sites that know their user: data-user-id and data-user-hmac
 * (hex HMAC-SHA256 of the user id with the tenant's widget secret, made on the site's
 * server). Everything lives in a Shadow DOM, so the page's CSS and the widget's never
 * meet. Text from messages and documents is only ever inserted as text nodes: nothing a
 * visitor or a document says can run as script. Protocol: docs/widget.md.
 */
(function () {
  "use strict";
  var script = document.currentScript ||
    document.querySelector('script[data-key][src*="widget.js"]');
  if (!script || window.__switchboardWidgetLoaded) { return; }
  window.__switchboardWidgetLoaded = true;

  var KEY = script.getAttribute("data-key") || "";
  var USER_ID = script.getAttribute("data-user-id") || "";
  var USER_HMAC = script.getAttribute("data-user-hmac") || "";
  var BASE = new URL(script.src, location.href);
  var HTTP_BASE = BASE.origin;
  var WS_BASE = (BASE.protocol === "https:" ? "wss://" : "ws://") + BASE.host;
  var STORE = "switchboard:" + KEY + ":token";

  // ---------------------------------------------------------------- safe Markdown --
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) { Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); }); }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function safeUrl(url) { return /^https?:\/\//i.test(url) ? url : ""; }
  var INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*)|(\[[^\]\n]+\]\([^)\s]+\))/;
  function inline(text, parent) {
    while (text) {
      var m = INLINE.exec(text);
      if (!m) { parent.appendChild(document.createTextNode(text)); return; }
      if (m.index) { parent.appendChild(document.createTextNode(text.slice(0, m.index))); }
      var t = m[0];
      if (m[1]) { parent.appendChild(el("code", null, t.slice(1, -1))); }
      else if (m[2]) { inline(t.slice(2, -2), parent.appendChild(el("strong"))); }
      else if (m[3]) { inline(t.slice(1, -1), parent.appendChild(el("em"))); }
      else {
        var label = t.slice(1, t.indexOf("]("));
        var href = safeUrl(t.slice(t.indexOf("](") + 2, -1));
        if (href) {
          parent.appendChild(el("a", { href: href, target: "_blank",
            rel: "noopener noreferrer nofollow" }, label));
        } else { parent.appendChild(document.createTextNode(label)); }
      }
      text = text.slice(m.index + t.length);
    }
  }
  function markdown(text, container) {
    container.textContent = "";
    var lines = text.split("\n"), i = 0, list = null, para = [];
    function flush() {
      if (para.length) { inline(para.join(" "), container.appendChild(el("p"))); para = []; }
    }
    while (i < lines.length) {
      var line = lines[i];
      if (/^```/.test(line)) {
        flush(); list = null;
        var code = [];
        i += 1;
        while (i < lines.length && !/^```/.test(lines[i])) { code.push(lines[i]); i += 1; }
        container.appendChild(el("pre")).appendChild(el("code", null, code.join("\n")));
        i += 1; continue;
      }
      var quote = /^>\s?(.*)$/.exec(line);
      if (quote) {
        flush(); list = null;
        var quoted = [];
        while (i < lines.length && /^>/.test(lines[i])) { quoted.push(lines[i].replace(/^>\s?/, "")); i += 1; }
        inline(quoted.join(" "), container.appendChild(el("blockquote")));
        continue;
      }
      var bullet = /^\s*(?:[-*•]|\d+[.)])\s+(.*)$/.exec(line);
      var heading = /^#{1,6}\s+(.*)$/.exec(line);
      if (bullet) {
        flush();
        if (!list) { list = container.appendChild(el(/^\s*\d/.test(line) ? "ol" : "ul")); }
        inline(bullet[1], list.appendChild(el("li")));
      } else if (heading) {
        flush(); list = null;
        inline(heading[1], container.appendChild(el("p", { "class": "h" })));
      } else if (!line.trim()) { flush(); list = null; }
      else { list = null; para.push(line.trim()); }
      i += 1;
    }
    flush();
  }

  // ------------------------------------------------------------------------ view --
  // Icons are inline SVG (fixed markup, no text from anywhere): no emoji font needed.
  function svg(path) {
    return '<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" ' +
      'stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
      path + "</svg>";
  }
  var ICON_CHAT = svg('<path d="M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z"/>');
  var ICON_UP = svg('<path d="M7 10v11M15 5.9 14 10h5.8a2 2 0 0 1 2 2.3l-1.4 7A2 2 0 0 1 18.5 21H7V10l4-8a3 3 0 0 1 4 3.9z"/>');
  var ICON_DOWN = svg('<path d="M17 14V3M9 18.1 10 14H4.2a2 2 0 0 1-2-2.3l1.4-7A2 2 0 0 1 5.5 3H17v11l-4 8a3 3 0 0 1-4-3.9z"/>');
  // The host is a custom element, so page rules for div, body > div and the like never
  // match it; its own :host rules are !important, which beats the page's !important
  // (for important declarations the shadow tree's win), so no page CSS can hide,
  // disable or restyle the widget. Page rules do not cross into the shadow root.
  var host = el("switchboard-widget", { id: "switchboard-widget" });
  var root = host.attachShadow({ mode: "open" });
  root.innerHTML = [
    "<style>",
    ":host{all:initial !important;display:block !important;visibility:visible !important;",
    "opacity:1 !important;pointer-events:auto !important;position:static !important;",
    "transform:none !important;filter:none !important;clip-path:none !important;",
    "contain:none !important;content-visibility:visible !important;z-index:auto !important}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',sans-serif}",
    ".launcher{position:fixed;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;",
    "background:var(--accent);color:#fff;cursor:pointer;z-index:2147483646;display:grid;place-items:center;",
    "box-shadow:0 4px 14px rgba(0,0,0,.25)}",
    ".panel{position:fixed;bottom:88px;width:370px;max-width:calc(100vw - 24px);height:560px;",
    "max-height:calc(100vh - 110px);background:#fff;color:#111;border-radius:14px;display:flex;",
    "flex-direction:column;overflow:hidden;z-index:2147483647;box-shadow:0 8px 30px rgba(0,0,0,.3);",
    "font-size:14px;line-height:1.45}",
    ".panel[hidden]{display:none}",
    ".right{right:20px}.left{left:20px}",
    "header{background:var(--accent);color:#fff;display:flex;align-items:center;gap:8px;padding:10px 12px}",
    "header h2{font-size:15px;margin:0;flex:1}",
    "header img{width:28px;height:28px;border-radius:50%}",
    "button{font:inherit}",
    ".close{background:transparent;border:0;color:#fff;font-size:22px;cursor:pointer;line-height:1}",
    ".log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:10px}",
    ".msg{max-width:88%;padding:8px 11px;border-radius:12px;word-wrap:break-word;overflow-wrap:anywhere}",
    ".user{align-self:flex-end;background:var(--accent);color:#fff;white-space:pre-wrap}",
    ".bot{align-self:flex-start;background:#f1f1f4}",
    ".bot p{margin:0 0 6px}.bot p:last-child{margin-bottom:0}.bot .h{font-weight:600}",
    ".bot pre{background:#1e1e2e;color:#f4f4f5;padding:8px;border-radius:6px;overflow-x:auto}",
    ".bot code{font-family:ui-monospace,monospace;font-size:12.5px}",
    ".bot ul,.bot ol{margin:0 0 6px;padding-left:20px}",
    ".bot blockquote{margin:0 0 6px;padding-left:8px;border-left:3px solid #c7c7d1;color:#333}",
    ".sources{margin-top:6px;font-size:12.5px;border-top:1px solid #ddd;padding-top:5px}",
    ".tools{display:flex;flex-wrap:wrap;gap:4px;margin:4px 0;font-size:12px}",
    ".tool{border:1px solid #ddd;border-radius:10px;padding:1px 8px;color:#444;background:#f6f6f6}",
    ".tool[data-status=running]{font-style:italic}",
    ".tool[data-status=error],.tool[data-status=refused],.tool[data-status=invalid],.tool[data-status=unknown]{border-color:#d99;color:#933}",
    ".sources ol{margin:2px 0 0;padding-left:18px}",
    ".sources a{color:var(--accent)}",
    ".row{display:flex;flex-wrap:wrap;gap:6px;margin-top:6px}",
    ".launcher svg{width:26px;height:26px}.thumb{display:inline-grid;place-items:center}",
    ".chip,.thumb{border:1px solid #ccc;background:#fff;border-radius:14px;padding:3px 10px;cursor:pointer;color:#111}",
    ".thumb[aria-pressed=true]{background:var(--accent);color:#fff;border-color:var(--accent)}",
    ".note{font-size:12px;color:#555}",
    ".error{align-self:center;color:#a11;font-size:12.5px}",
    ".typing{padding:0 14px 6px;color:#666;font-size:12.5px}",
    ".typing[hidden]{display:none}",
    "form{display:flex;gap:6px;border-top:1px solid #e4e4e7;padding:8px}",
    "textarea{flex:1;resize:none;border:1px solid #ccc;border-radius:8px;padding:7px;font-size:14px;",
    "max-height:120px;color:#111;background:#fff}",
    ".send{background:var(--accent);color:#fff;border:0;border-radius:8px;padding:0 14px;cursor:pointer}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}",
    ":focus-visible{outline:2px solid var(--accent);outline-offset:2px}",
    "@media (max-width:480px){.panel{inset:0;width:100%;max-width:100%;height:100%;max-height:100%;",
    "border-radius:0;bottom:0}.launcher{bottom:14px}}",
    "</style>",
    '<button class="launcher" type="button" aria-label="Open chat" aria-expanded="false"',
    ' aria-controls="sb-panel">' + ICON_CHAT + '</button>',
    '<section class="panel" id="sb-panel" role="dialog" aria-labelledby="sb-title" hidden>',
    '<header><img class="avatar" alt="" hidden><h2 id="sb-title">Assistant</h2>',
    '<button class="close" type="button" aria-label="Close chat">&times;</button></header>',
    '<div class="log" role="log" aria-live="polite" aria-relevant="additions" tabindex="0"></div>',
    '<div class="typing" hidden aria-hidden="true">Assistant is typing…</div>',
    '<div class="sr" role="status" aria-live="polite"></div>',
    '<form><label class="sr" for="sb-input">Message</label>',
    '<textarea id="sb-input" rows="1" placeholder="Type a message…"></textarea>',
    '<button class="send" type="submit">Send</button></form></section>'
  ].join("");
  var launcher = root.querySelector(".launcher");
  var panel = root.querySelector(".panel");
  var log = root.querySelector(".log");
  var typing = root.querySelector(".typing");
  var status = root.querySelector("[role=status]");
  var form = root.querySelector("form");
  var input = root.querySelector("textarea");
  host.style.setProperty("--accent", "#4f46e5");

  function open(show) {
    panel.hidden = !show;
    launcher.setAttribute("aria-expanded", String(show));
    launcher.setAttribute("aria-label", show ? "Close chat" : "Open chat");
    if (show) { input.focus(); log.scrollTop = log.scrollHeight; } else { launcher.focus(); }
  }
  launcher.addEventListener("click", function () { open(panel.hidden); });
  root.querySelector(".close").addEventListener("click", function () { open(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") { open(false); } });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    send(text);
  });

  function scroll() { log.scrollTop = log.scrollHeight; }
  function applyConfig(c) {
    host.style.setProperty("--accent", c.accent_color || "#4f46e5");
    root.getElementById("sb-title").textContent = c.title || "Assistant";
    typing.textContent = (c.title || "Assistant") + " is typing…";
    var side = c.position === "bottom-left" ? "left" : "right";
    launcher.classList.add(side); panel.classList.add(side);
    if (c.max_message_chars) { input.maxLength = c.max_message_chars; }
    var avatar = root.querySelector(".avatar");
    if (safeUrl(c.avatar_url || "")) { avatar.src = c.avatar_url; avatar.hidden = false; }
    if (c.greeting && !log.childElementCount) {
      log.appendChild(el("div", { "class": "msg bot greeting" })).appendChild(el("p", null, c.greeting));
    }
  }

  var users = {}, bots = {}, texts = {};
  function userBubble(clientId, text) {
    if (clientId && users[clientId]) { return users[clientId]; }
    var node = log.appendChild(el("div", { "class": "msg user" }, text));
    if (clientId) { users[clientId] = node; }
    scroll();
    return node;
  }
  function botBubble(clientId) {
    if (clientId && bots[clientId]) { return bots[clientId]; }
    var node = log.appendChild(el("div", { "class": "msg bot" }));
    node.appendChild(el("div", { "class": "body" }));
    if (clientId) { bots[clientId] = node; }
    return node;
  }
  function toolChip(node, ev) {
    var row = node.querySelector(".tools");
    if (!row) { row = el("div", { "class": "tools", "aria-live": "polite" }); node.insertBefore(row, node.firstChild); }
    var chip = row.querySelector('[data-call="' + CSS.escape(ev.call_id || "") + '"]');
    if (!chip) { chip = row.appendChild(el("span", { "class": "tool", "data-call": ev.call_id || "" })); }
    chip.setAttribute("data-status", ev.status || "");
    chip.textContent = ev.status === "running" ? (ev.label || ev.tool) + "…"
      : (ev.label || ev.tool) + (ev.summary ? " — " + ev.summary : "");
  }
  function citationHref(c) {
    return safeUrl(c.url || "") ||
      (/^\/sources\/v1\//.test(c.page || "") ? HTTP_BASE + c.page : "");
  }
  // "[2]" in an answer's text becomes a link to source 2 (text nodes only, never markup).
  function linkMarkers(body, cites) {
    var byNumber = {};
    cites.forEach(function (c) { byNumber[c.number] = c; });
    var walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT), nodes = [];
    while (walker.nextNode()) {
      if (walker.currentNode.parentNode.nodeName !== "CODE") { nodes.push(walker.currentNode); }
    }
    nodes.forEach(function (textNode) {
      var parts = textNode.nodeValue.split(/(\[\d{1,2}\])/);
      if (parts.length < 2) { return; }
      var frag = document.createDocumentFragment();
      parts.forEach(function (part) {
        var m = /^\[(\d{1,2})\]$/.exec(part), c = m && byNumber[+m[1]], href = c && citationHref(c);
        if (href) {
          frag.appendChild(el("a", { href: href, target: "_blank", "class": "marker",
            rel: "noopener noreferrer nofollow", title: c.title || c.source || "" }, part));
        } else { frag.appendChild(document.createTextNode(part)); }
      });
      textNode.parentNode.replaceChild(frag, textNode);
    });
  }
  function finish(node, reply) {
    node.setAttribute("data-turn", reply.turn_id || "");
    markdown(reply.text || "", node.querySelector(".body"));
    if (!node.querySelector(".tools")) {
      (reply.tools || []).forEach(function (t, i) {
        toolChip(node, { call_id: "r" + i, tool: t.tool, status: t.outcome, summary: t.summary });
      });
    }
    var cites = reply.citations || [];
    linkMarkers(node.querySelector(".body"), cites);
    if (cites.length) {
      var box = node.appendChild(el("div", { "class": "sources" }, "Sources"));
      var list = box.appendChild(el("ol"));
      cites.forEach(function (c) {
        var item = list.appendChild(el("li"));
        // A file with no web address opens on this server's source page (signed path).
        var href = citationHref(c);
        if (href) {
          item.appendChild(el("a", { href: href, target: "_blank", rel: "noopener noreferrer nofollow",
            title: c.source || "" }, c.title || c.source || href));
        } else { item.appendChild(el("span", { title: c.source || "" }, c.title || c.source || "source")); }
      });
    }
    var ups = reply.follow_ups || [];
    if (ups.length) {
      var chips = node.appendChild(el("div", { "class": "row chips", "aria-label": "Suggestions" }));
      ups.forEach(function (q) {
        chips.appendChild(el("button", { type: "button", "class": "chip" }, q))
          .addEventListener("click", function () { send(q); });
      });
    }
    if (reply.confirm && reply.confirm.id) {
      // A change the model proposed: nothing happens until this visitor clicks.
      var ask = node.appendChild(el("div", { "class": "row confirm", role: "group",
        "aria-label": "Confirm the proposed change" }));
      [["yes", "Confirm"], ["no", "Cancel"]].forEach(function (d) {
        ask.appendChild(el("button", { type: "button", "class": "chip confirm-" + d[0] }, d[1]))
          .addEventListener("click", function () {
            ask.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
            var id = newId();
            userBubble(id, d[1]);
            transport.send({ type: "confirm", id: reply.confirm.id, decision: d[0], client_id: id });
          });
      });
    }
    if (reply.turn_id && reply.kind === "answer") {
      var row = node.appendChild(el("div", { "class": "row feedback" }));
      [["up", ICON_UP, "Helpful"], ["down", ICON_DOWN, "Not helpful"]].forEach(function (t) {
        var thumb = el("button", { type: "button", "class": "thumb", "aria-label": t[2],
          title: t[2], "aria-pressed": "false", "data-rating": t[0] });
        thumb.innerHTML = t[1];  // a constant icon, never content
        row.appendChild(thumb).addEventListener("click", function () {
            transport.send({ type: "feedback", turn_id: reply.turn_id, rating: t[0] });
          });
      });
    }
    status.textContent = "New answer";
    scroll();
  }
  function renderHistory(history) {
    history.forEach(function (m) {
      if (m.role === "user") { userBubble(m.client_id, m.text); }
      else {
        var node = botBubble(m.client_id || null);
        // An answer from before a reload keeps its sources, suggestions and feedback.
        finish(node, { text: m.text, turn_id: m.turn_id, kind: m.kind || "history",
          citations: m.citations, follow_ups: m.follow_ups || [] });
      }
    });
  }

  // ------------------------------------------------------------------- protocol --
  var lastSeq = null, pending = {}, order = [];
  function newId() {
    var a = new Uint8Array(12); crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  function send(text) {
    var id = newId();
    pending[id] = text; order.push(id);
    userBubble(id, text);
    transport.send({ type: "message", text: text, client_id: id });
  }
  function onEvent(ev) {
    if (ev.type === "welcome") {
      if (ev.token && !USER_ID) { try { localStorage.setItem(STORE, ev.token); } catch (e) { /* private mode */ } }
      transport.token = ev.token;
      applyConfig(ev.config || {});
      if (lastSeq === null) { renderHistory(ev.history || []); lastSeq = ev.seq; }
      order.forEach(function (id) {
        if (pending[id]) { transport.send({ type: "message", text: pending[id], client_id: id }); }
      });
      return;
    }
    if (ev.seq !== undefined) {
      if (lastSeq !== null && ev.seq <= lastSeq) { return; }
      lastSeq = ev.seq;
    }
    if (ev.type === "reset") { lastSeq = null; log.textContent = ""; users = {}; bots = {}; transport.restart(); return; }
    if (ev.type === "message") { delete pending[ev.client_id]; userBubble(ev.client_id, ev.text); return; }
    if (ev.type === "typing") { typing.hidden = false; return; }
    if (ev.type === "delta") {
      typing.hidden = true;
      texts[ev.client_id] = (texts[ev.client_id] || "") + ev.text;
      markdown(texts[ev.client_id], botBubble(ev.client_id).querySelector(".body"));
      scroll(); return;
    }
    if (ev.type === "tool") { toolChip(botBubble(ev.client_id), ev); scroll(); return; }
    if (ev.type === "reply") {
      typing.hidden = true; delete texts[ev.client_id];
      finish(botBubble(ev.client_id), ev); return;
    }
    if (ev.type === "feedback") {
      var node = log.querySelector('[data-turn="' + CSS.escape(ev.turn_id) + '"]');
      if (!node) { return; }
      node.querySelectorAll(".thumb").forEach(function (b) {
        b.setAttribute("aria-pressed", String(ev.stored && b.getAttribute("data-rating") === ev.rating));
      });
      var note = node.querySelector(".note") || node.appendChild(el("div", { "class": "note" }));
      note.textContent = ev.stored ? "Thanks for the feedback!" : "Sorry, that feedback could not be saved.";
      return;
    }
    if (ev.type === "error") {
      if (ev.client_id) { delete pending[ev.client_id]; }
      typing.hidden = true;
      log.appendChild(el("div", { "class": "error", role: "alert" }, ev.message || "Something went wrong."));
      scroll();
    }
  }

  function hello() {
    // This page's own session first (storage may be blocked or cleared), then the one a
    // previous page load kept.
    var token = transport.token;
    if (!token) { try { token = localStorage.getItem(STORE) || ""; } catch (e) { token = ""; } }
    return { type: "hello", token: USER_ID ? "" : token, user_id: USER_ID, user_hmac: USER_HMAC,
      after: lastSeq };
  }

  // WebSocket first; after two failed attempts without ever connecting, Server-Sent
  // Events plus POST. Either way, reconnects resume after the last event seen.
  var transport = {
    token: "", ws: null, sse: null, mode: "ws", failures: 0, welcomed: false, delay: 500, fatal: false,
    start: function () { if (this.mode === "ws") { this.openWs(); } else { this.openSse(); } },
    restart: function () {
      if (this.ws) { this.ws.onclose = null; this.ws.close(); this.ws = null; }
      if (this.sse) { this.sse.close(); this.sse = null; }
      this.start();
    },
    retry: function () {
      var self = this;
      if (self.fatal) { return; }
      setTimeout(function () { self.start(); }, self.delay);
      self.delay = Math.min(self.delay * 2, 10000);
    },
    openWs: function () {
      var self = this, ws = new WebSocket(WS_BASE + "/widget/v1/ws?key=" + encodeURIComponent(KEY));
      self.ws = ws;
      ws.onopen = function () { ws.send(JSON.stringify(hello())); };
      ws.onmessage = function (m) {
        var ev = JSON.parse(m.data);
        if (ev.type === "welcome") { self.welcomed = true; self.failures = 0; self.delay = 500; }
        if (ev.type === "error" && !self.welcomed && ev.code !== "rate_limited") {
          self.fatal = ev.code === "identity" || ev.code === "origin";
          if (ev.code === "token") { try { localStorage.removeItem(STORE); } catch (e) { /* */ } }
        }
        onEvent(ev);
      };
      ws.onclose = function () {
        self.ws = null;
        if (!self.welcomed) { self.failures += 1; }
        if (!self.welcomed && self.failures >= 2 && !self.fatal) { self.mode = "sse"; }
        self.welcomed = false;
        self.retry();
      };
    },
    openSse: function () {
      var self = this;
      fetch(HTTP_BASE + "/widget/v1/session?key=" + encodeURIComponent(KEY), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: KEY, token: hello().token, user_id: USER_ID, user_hmac: USER_HMAC }) })
        .then(function (r) { return r.json().then(function (b) { return [r.ok, b]; }); })
        .then(function (res) {
          if (!res[0]) { onEvent({ type: "error", message: res[1].message }); self.fatal = true; return; }
          var resume = lastSeq;
          onEvent(res[1]);
          var after = resume === null ? res[1].seq : resume;
          self.sse = new EventSource(HTTP_BASE + "/widget/v1/events?key=" + encodeURIComponent(KEY) +
            "&token=" + encodeURIComponent(self.token) + "&after=" + after);
          self.sse.onmessage = function (m) { onEvent(JSON.parse(m.data)); };
        })
        .catch(function () { self.retry(); });
    },
    send: function (frame) {
      if (this.mode === "ws") {
        if (this.ws && this.ws.readyState === 1 && this.welcomed) { this.ws.send(JSON.stringify(frame)); }
        return;  // pending messages are resent after the next welcome
      }
      if (!this.token) { return; }
      fetch(HTTP_BASE + "/widget/v1/messages?key=" + encodeURIComponent(KEY), { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ key: KEY, token: this.token, frame: frame }) })
        .then(function (r) { return r.json(); })
        .then(function (ev) { if (ev.type === "error") { onEvent(ev); } })
        .catch(function () { /* resent after the next welcome */ });
    }
  };

  function mount() {
    document.body.appendChild(host);
    transport.start();
  }
  window.SwitchboardWidget = { open: function () { open(true); }, close: function () { open(false); } };
  if (document.body) { mount(); } else { document.addEventListener("DOMContentLoaded", mount); }
})();
