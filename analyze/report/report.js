// patchtrace report viewer: draws the data embedded in #pt-data. No network.
"use strict";
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message || e)); });
  var consoleError = console.error;
  console.error = function () { errors.push(Array.prototype.join.call(arguments, " ")); consoleError.apply(console, arguments); };
  var D = JSON.parse(document.getElementById("pt-data").textContent);
  var S = D.strings;
  var GUT = 96, AXIS = 22, HDR = 16, SUB = 34, BAND = 12, STEP = 7;
  var COL = { bp: "#ef6c00", nmi: "#d32f2f", irq: "#1e88e5", trap: "#757575", poke: "#8e24aa", ipi: "#2e7d32", marker: "#546e7a", fault: "#000", int3: "rgba(255,152,0,0.16)" };
  var FCOL = ["#d81b60", "#3949ab", "#00897b", "#f4511e", "#6d4c41", "#7cb342", "#5e35b1", "#039be5"];
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    return e;
  }
  function svgEl(tag, attrs) {
    var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    return e;
  }
  function hash(s) { var h = 0; for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0; return h; }
  function symColor(i) {
    if (i < 0) return "#cfd8dc";
    var h = Math.abs(hash(S[i])) % 360;
    return "hsl(" + h + ",45%,72%)";
  }
  function ctxColor(v) { return v === 3 ? COL.bp : v === 2 ? COL.nmi : v >= 32 ? COL.irq : COL.trap; }

  // ---- page skeleton
  var header = el("header");
  header.appendChild(el("h1", null, D.title));
  var facts = el("div", { "class": "facts" });
  function fact(k, v) { var s = el("span"); s.appendChild(el("b", null, k + ": ")); s.appendChild(document.createTextNode(v)); facts.appendChild(s); return s; }
  fact("scenario", D.scenario); fact("seed", String(D.seed)); fact("CPUs", String(D.cpus));
  fact("events", String(D.events)); fact("decisions", String(D.decisions)); fact("outcome", D.outcome);
  var vs = fact("verdict", D.verdict + (D.verdict === "findings" ? " (" + D.got + ")" : "") + " vs expected " + (D.expect || "unknown") + " ");
  var badge = el("span", { "class": "badge " + (D.match === null ? "unk" : D.match ? "ok" : "bad"), id: "pt-match" }, D.match === null ? "no expectation" : D.match ? "as expected" : "NOT as expected");
  vs.appendChild(badge);
  fact("file", D.file);
  header.appendChild(facts);
  if (D.incomplete) header.appendChild(el("div", { "class": "warn" }, "INCOMPLETE: " + D.incomplete));
  (D.warnings || []).forEach(function (w) { header.appendChild(el("div", { "class": "warn" }, "warning: " + w)); });
  if (D.capped.length) header.appendChild(el("div", { "class": "warn" }, "capped (not every item embedded): " + D.capped.join(", ")));
  document.body.appendChild(header);

  var main = el("div", { id: "main" });
  var col = el("div", { id: "tlcol" });
  var toolbar = el("div", { id: "toolbar" });
  var bAll = el("button", { type: "button" }, "whole run"), bIn = el("button", { type: "button" }, "zoom in"), bOut = el("button", { type: "button" }, "zoom out");
  var info = el("span", { id: "view-info" });
  toolbar.appendChild(bAll); toolbar.appendChild(bIn); toolbar.appendChild(bOut); toolbar.appendChild(info);
  toolbar.appendChild(el("span", { style: "color:#777" }, "wheel: zoom, drag: pan, click an event: its row"));
  col.appendChild(toolbar);
  var banner = el("div", { id: "banner" });
  col.appendChild(banner);
  var ov = el("canvas", { id: "overview" });
  col.appendChild(ov);
  var tl = el("div", { id: "tl" });
  var cv = el("canvas", { id: "timeline" });
  var svg = svgEl("svg", { id: "overlay" });
  tl.appendChild(cv); tl.appendChild(svg);
  col.appendChild(tl);
  var rowpanel = el("div", { id: "rowpanel" });
  rowpanel.appendChild(el("div", null, "Click an event (a story dot, a story line or the timeline in a detailed stretch) to see its row."));
  col.appendChild(rowpanel);
  var legend = el("div", { id: "legend" });
  [["function (hue per symbol)", "hsl(200,45%,72%)"], ["#BP (int3) handler", COL.bp], ["NMI", COL.nmi], ["IRQ/IPI handler", COL.irq], ["other exception", COL.trap],
   ["text_poke write", COL.poke], ["IPI sent / interrupt raised", COL.ipi], ["scenario marker", COL.marker], ["int3 window of a patch site", "rgba(255,152,0,0.35)"]].forEach(function (l) {
    var s = el("span"); var i = el("i"); i.style.background = l[1]; s.appendChild(i); s.appendChild(document.createTextNode(l[0])); legend.appendChild(s);
  });
  col.appendChild(legend);
  main.appendChild(col);
  var aside = el("aside", { id: "findings" });
  aside.appendChild(el("h2", null, D.findings.length ? D.findings.length + " finding(s)" : "no findings"));
  main.appendChild(aside);
  document.body.appendChild(main);
  var tip = el("div", { id: "tip" }); document.body.appendChild(tip);

  // ---- lanes: per CPU a header row (marks) and a sub-lane per task
  var laneTop = [], subTop = [], H = AXIS;
  for (var c = 0; c < D.cpus; c++) {
    laneTop.push(H); H += HDR; subTop.push([]);
    var tasks = D.tasks[c].length ? D.tasks[c] : [0];
    for (var t = 0; t < tasks.length; t++) { subTop[c].push(H); H += SUB; }
    H += 6;
  }
  tl.style.height = H + "px";
  for (c = 0; c < D.cpus; c++) {
    var lab = el("div", { "class": "lane-label", "data-cpu": String(c) }, "cpu" + c);
    lab.style.top = (laneTop[c] + 1) + "px"; tl.appendChild(lab);
    D.tasks[c].forEach(function (task, i) {
      var tlab = el("div", { "class": "task-label" }, "task " + task);
      tlab.style.top = (subTop[c][i] + 4) + "px"; tl.appendChild(tlab);
    });
  }

  // ---- rows kept in full
  var rowsBySeq = new Map();
  D.detail.forEach(function (w) { w.rows.forEach(function (r) { rowsBySeq.set(r[0], r); }); });
  function rowObject(r) {
    var o = { seq: r[0], kind: S[r[1]], cpu: r[2], task: r[3], trap_depth: r[4], where: S[r[5]] };
    var f = JSON.parse(S[r[6]]);
    for (var k in f) o[k] = f[k];
    return o;
  }
  function sublaneOf(cpu, task) { var i = D.tasks[cpu] ? D.tasks[cpu].indexOf(task) : -1; return i < 0 ? 0 : i; }

  // ---- view
  var lo = D.seq_lo, hi = D.seq_hi + 1, W = 800;
  function X(seq) { return GUT + (seq - lo) / (hi - lo) * (W - GUT); }
  function SEQ(x) { return lo + (x - GUT) / (W - GUT) * (hi - lo); }
  function setView(a, b) {
    var span = Math.max(8, b - a), full = D.seq_hi + 1 - D.seq_lo;
    if (span > full) span = full;
    a = Math.max(D.seq_lo, Math.min(a, D.seq_hi + 1 - span));
    lo = a; hi = a + span; draw();
  }

  function draw() {
    W = Math.max(300, tl.clientWidth);
    var dpr = window.devicePixelRatio || 1;
    cv.width = W * dpr; cv.height = H * dpr; cv.style.width = W + "px"; cv.style.height = H + "px";
    svg.setAttribute("width", W); svg.setAttribute("height", H);
    var g = cv.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    g.fillStyle = "#f3f5f8"; g.fillRect(0, 0, GUT, H);
    drawAxis(g);
    for (var c = 0; c < D.cpus; c++) { g.fillStyle = "#eef1f5"; g.fillRect(GUT, laneTop[c], W - GUT, HDR); }
    var perPx = (hi - lo) / (W - GUT);
    drawSummary(g);
    var detailed = perPx < 40;
    if (detailed) D.detail.forEach(function (w) { if (w.seq_hi >= lo && w.seq_lo <= hi) drawDetail(g, w); });
    drawInt3(g);
    drawMarks(g, perPx);
    drawFindings();
    info.textContent = "seq " + Math.floor(lo) + " .. " + Math.floor(hi) + " (" + (perPx < 1 ? (1 / perPx).toFixed(1) + " px/event" : perPx.toFixed(0) + " events/px") + (detailed ? ", full rows where kept" : ", summary") + ")";
    drawOverview();
  }

  function drawAxis(g) {
    g.fillStyle = "#fff"; g.fillRect(GUT, 0, W - GUT, AXIS);
    var span = hi - lo, step = Math.pow(10, Math.floor(Math.log10(span / 6)));
    if (span / step > 12) step *= 5; else if (span / step > 6) step *= 2;
    g.fillStyle = "#555"; g.font = "10px sans-serif"; g.strokeStyle = "#e6e9ee";
    for (var s = Math.ceil(lo / step) * step; s < hi; s += step) {
      var x = X(s); g.fillText(String(s), x + 2, 14);
      g.beginPath(); g.moveTo(x + 0.5, AXIS - 6); g.lineTo(x + 0.5, H); g.stroke();
    }
    g.fillText("seq", 4, 14);
  }

  // One pixel column at a time: merge the buckets it covers.
  function drawSummary(g) {
    var sm = D.summary, bw = sm.width;
    var b0 = Math.max(0, Math.floor((lo - D.seq_lo) / bw)), b1 = Math.min(sm.buckets - 1, Math.floor((hi - D.seq_lo) / bw));
    for (var c = 0; c < D.cpus; c++) {
      var px = -1, acc = null;
      var flush = function (x0, x1) {
        if (!acc || acc.count === 0) return;
        var top = subTop[c][acc.task] || subTop[c][0];
        var yb = top + SUB - BAND;
        g.globalAlpha = 0.35 + 0.65 * Math.min(1, acc.count / bw);
        g.fillStyle = symColor(acc.sym); g.fillRect(x0, yb, Math.max(1, x1 - x0), BAND);
        var cols = [];
        if (acc.flags & 1) cols.push(COL.bp);
        if (acc.flags & 2) cols.push(COL.irq);
        if (acc.flags & 8) cols.push(COL.trap);
        if (acc.flags & 4) cols.push(COL.nmi);
        for (var d = 1; d <= acc.depth; d++) {
          g.fillStyle = cols.length ? cols[Math.min(d - 1, cols.length - 1)] : COL.trap;
          g.fillRect(x0, yb - d * STEP, Math.max(1, x1 - x0), STEP - 1);
        }
        g.globalAlpha = 1;
      };
      var x0 = 0;
      for (var b = b0; b <= b1; b++) {
        var xs = X(D.seq_lo + b * bw), xe = X(D.seq_lo + (b + 1) * bw);
        var p = Math.floor(xs);
        if (p !== px || xe - xs >= 1) {
          flush(x0, Math.max(px + 1, xs));
          px = p; x0 = Math.max(GUT, xs);
          acc = { count: 0, depth: 0, flags: 0, sym: -1, task: 0, best: 0 };
        }
        var n = sm.count[c][b];
        acc.count += n; acc.depth = Math.max(acc.depth, sm.depth[c][b]); acc.flags |= sm.flags[c][b];
        if (n > acc.best) { acc.best = n; acc.sym = sm.sym[c][b]; acc.task = sm.task[c][b]; }
        if (xe - xs >= 1) { flush(x0, Math.min(W, xe)); acc = null; px = -1; }
      }
      if (acc) flush(x0, Math.min(W, X(D.seq_lo + (b1 + 1) * bw)));
    }
  }

  function drawDetail(g, w) {
    var xa = Math.max(GUT, X(w.seq_lo)), xb = Math.min(W, X(w.seq_hi + 1));
    for (var c = 0; c < D.cpus; c++) {
      var t0 = subTop[c][0], t1 = subTop[c][subTop[c].length - 1] + SUB;
      g.fillStyle = "#fff"; g.fillRect(xa, t0, xb - xa, t1 - t0);
    }
    g.font = "10px sans-serif";
    w.spans.forEach(function (sp) {
      var c = sp[0], top = subTop[c][sp[1]] || subTop[c][0];
      var x0 = X(sp[3]), x1 = X(sp[4] + 1);
      if (x1 < GUT || x0 > W) return;
      x0 = Math.max(GUT, x0); x1 = Math.min(W, x1);
      var yb = top + SUB - BAND, d = sp[2];
      for (var k = 1; k <= d; k++) { g.fillStyle = ctxColor(sp[6][k - 1]); g.fillRect(x0, yb - k * STEP, Math.max(1, x1 - x0), STEP - 1); }
      g.fillStyle = symColor(sp[5]); g.fillRect(x0, yb, Math.max(1, x1 - x0), BAND);
      if (x1 - x0 > 50 && sp[5] >= 0) {
        g.fillStyle = "#222"; g.save(); g.beginPath(); g.rect(x0, yb, x1 - x0, BAND); g.clip();
        g.fillText(S[sp[5]], x0 + 2, yb + 9); g.restore();
      }
    });
    // non-instruction rows as ticks on their sub-lane
    w.rows.forEach(function (r) {
      var k = S[r[1]];
      if (k === "insn") return;
      var x = X(r[0]);
      if (x < GUT || x > W) return;
      var top = subTop[r[2]][sublaneOf(r[2], r[3])];
      var poke = k === "write" && S[r[6]].indexOf('"alias"') >= 0;
      g.fillStyle = k === "trap" ? ctxColor(-1) : poke ? COL.poke : k === "iret" ? "#444" : k === "fault" ? COL.fault : "#b0bec5";
      if (k === "trap") g.fillStyle = COL.bp;
      var tall = k === "trap" || k === "iret" || k === "fault" || poke;
      g.fillRect(x - 0.5, top + (tall ? 2 : 8), 1.5, SUB - BAND - (tall ? 4 : 10));
    });
  }

  function drawInt3(g) {
    g.font = "10px sans-serif";
    var labelEnd = [];  // per label row, where its last label ends
    D.int3_windows.forEach(function (w) {
      var x0 = X(w.seq_lo), x1 = X(w.seq_hi + 1);
      if (x1 < GUT || x0 > W) return;
      x0 = Math.max(GUT, x0); x1 = Math.min(W, Math.max(x1, x0 + 1));
      g.fillStyle = COL.int3; g.fillRect(x0, AXIS, x1 - x0, H - AXIS);
      g.fillStyle = "rgba(239,108,0,0.9)"; g.fillRect(x0, AXIS - 3, x1 - x0, 3);
      if (x1 - x0 > 70) {
        var text = "int3 window @ " + w.site, tw = g.measureText(text).width + 8, row = 0;
        while (row < 3 && labelEnd[row] !== undefined && labelEnd[row] > x0) row++;
        if (row < 3) { labelEnd[row] = x0 + tw; g.fillStyle = "#b34700"; g.fillText(text, x0 + 2, H - 3 - row * 11); }
      }
    });
  }

  function drawMarks(g, perPx) {
    function tri(x, y, color) { g.fillStyle = color; g.beginPath(); g.moveTo(x - 4, y); g.lineTo(x + 4, y); g.lineTo(x, y + 7); g.closePath(); g.fill(); }
    D.pokes.forEach(function (p) { var x = X(p[0]); if (x >= GUT && x <= W) tri(x, laneTop[p[1]] + 2, COL.poke); });
    D.ipis.forEach(function (p) { var x = X(p[0]); if (x >= GUT && x <= W) { g.fillStyle = COL.ipi; g.fillRect(x - 1, laneTop[p[1]] + 2, 2, HDR - 4); } });
    var vis = D.markers.filter(function (m) { return m[0] >= lo && m[0] <= hi; });
    vis.forEach(function (m) {
      var x = X(m[0]);
      g.fillStyle = COL.marker; g.fillRect(x - 0.5, laneTop[m[1]] + 1, 1.5, HDR - 2);
      if (vis.length < 40) { g.strokeStyle = "rgba(84,110,122,0.5)"; g.setLineDash([3, 3]); g.beginPath(); g.moveTo(x + 0.5, AXIS); g.lineTo(x + 0.5, H); g.stroke(); g.setLineDash([]); g.fillText((S[m[4]] || "m" + m[2]) + "=" + m[3], x + 2, laneTop[m[1]] + 11); }
    });
  }

  // ---- findings: SVG overlay (clickable), cards beside
  var selFinding = -1, selSeq = -1;
  function evY(e) {
    var r = rowsBySeq.get(e.seq), cpu = r ? r[2] : e.cpu, task = r ? r[3] : -1;
    var sub = task >= 0 ? sublaneOf(cpu, task) : 0;
    var top = subTop[cpu] ? subTop[cpu][sub] : AXIS;
    return top + SUB - BAND / 2;
  }
  function drawFindings() {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    D.findings.forEach(function (f, i) {
      var color = FCOL[i % FCOL.length];
      var grp = svgEl("g", { "class": "finding", "data-finding": String(i) });
      var xf = X(f.seq_first);
      if (xf >= GUT && xf <= W) {
        var ly = laneTop[f.cpu] || AXIS;
        grp.appendChild(svgEl("line", { x1: xf, x2: xf, y1: AXIS, y2: H, stroke: color, "stroke-width": 1, "stroke-dasharray": "2,3" }));
        var flag = svgEl("text", { x: xf + 3, y: ly + 12, fill: color, "font-size": 11, "font-weight": 700 });
        flag.textContent = "F" + (i + 1) + " " + f.analyzer;
        grp.appendChild(flag);
      }
      var pts = f.events.map(function (e) { return [Math.max(GUT - 4, Math.min(W + 4, X(e.seq))), evY(e)]; });
      if (pts.length > 1) grp.appendChild(svgEl("polyline", { points: pts.map(function (p) { return p.join(","); }).join(" "), fill: "none", stroke: color, "stroke-width": selFinding === i ? 2.5 : 1.5, "stroke-opacity": 0.85 }));
      f.events.forEach(function (e, j) {
        var p = pts[j], sel = selSeq === e.seq && selFinding === i;
        var cir = svgEl("circle", { cx: p[0], cy: p[1], r: e.evidence ? 6 : 4.5, fill: sel ? "#ffeb3b" : e.evidence ? color : "#fff", stroke: color, "stroke-width": 2,
          "class": "hit story-ev", "data-finding": String(i), "data-seq": String(e.seq) });
        cir.addEventListener("click", function (ev) { ev.stopPropagation(); selectEvent(i, e.seq); });
        cir.addEventListener("mousemove", function (ev) { showTip(ev, "F" + (i + 1) + " step " + (j + 1) + ": " + e.text); });
        cir.addEventListener("mouseleave", hideTip);
        grp.appendChild(cir);
        if (f.events.length <= 20) {
          var num = svgEl("text", { x: p[0] + 5, y: p[1] - 7, "font-size": 9, fill: color }); num.textContent = String(j + 1); grp.appendChild(num);
        }
      });
      svg.appendChild(grp);
    });
  }
  function showTip(ev, text) { tip.textContent = text; tip.style.display = "block"; tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; }
  function hideTip() { tip.style.display = "none"; }

  var cards = [];
  D.findings.forEach(function (f, i) {
    var color = FCOL[i % FCOL.length];
    var card = el("div", { "class": "finding", "data-finding": String(i) }); card.style.setProperty("--fc", color);
    card.appendChild(el("div", { "class": "hdr" }, "F" + (i + 1) + " " + f.severity + " " + f.analyzer + ": cpu" + f.cpu + " " + f.context + " at " + f.where + (f.source ? " (" + f.source + ")" : "") + (f.count > 1 ? " [" + f.count + " times" + (f.contexts && f.contexts.length > 1 ? ", also on " + f.contexts.slice(1).join(", ") : "") + "; first shown]" : "")));
    card.appendChild(el("div", { "class": "msg" }, f.message));
    card.appendChild(el("div", null, "seq " + f.seq_first + ".." + f.seq_last + "; evidence: seq " + (f.evidence || []).join(", ")));
    var ol = el("ol");
    f.events.forEach(function (e) {
      var li = el("li", { "data-seq": String(e.seq), "class": e.evidence ? "ev" : "" }, e.text);
      li.addEventListener("click", function (ev) { ev.stopPropagation(); selectEvent(i, e.seq, true); });
      ol.appendChild(li);
    });
    card.appendChild(ol);
    card.addEventListener("click", function () { zoomFinding(i); });
    aside.appendChild(card); cards.push(card);
  });

  function zoomFinding(i) {
    var f = D.findings[i], a = f.seq_first, b = f.seq_first;
    f.events.forEach(function (e) { a = Math.min(a, e.seq); b = Math.max(b, e.seq); });
    // Show the patcher's side too: the start of the int3 window the
    // finding falls in (the write that armed the site), when it is near.
    var near = 2000 + 10 * (b - a);
    D.int3_windows.forEach(function (w) { if (w.seq_lo <= f.seq_first && f.seq_first <= w.seq_hi && f.seq_first - w.seq_lo <= near) a = Math.min(a, w.seq_lo); });
    var pad = Math.max(20, (b - a) * 0.08);
    selFinding = i; markCards();
    setView(a - pad, b + pad);
  }
  function setBanner() {
    while (banner.firstChild) banner.removeChild(banner.firstChild);
    if (selFinding < 0) { banner.style.display = "none"; return; }
    var f = D.findings[selFinding], cpus = {};
    f.events.forEach(function (e) { cpus["cpu" + e.cpu] = 1; });
    banner.style.display = "block";
    banner.style.borderLeftColor = FCOL[selFinding % FCOL.length];
    banner.appendChild(el("b", null, "F" + (selFinding + 1) + " " + f.analyzer + " on cpu" + f.cpu + " at " + f.where + (f.source ? " (" + f.source + ")" : "") + ": "));
    banner.appendChild(document.createTextNode(f.message + " (story across " + Object.keys(cpus).sort().join(", ") + ")"));
  }
  function markCards() {
    setBanner();
    cards.forEach(function (cd, k) {
      cd.classList.toggle("sel", k === selFinding);
      cd.querySelectorAll("li").forEach(function (li) { li.classList.toggle("sel", k === selFinding && Number(li.getAttribute("data-seq")) === selSeq); });
    });
  }
  function selectEvent(i, seq, center) {
    selFinding = i; selSeq = seq; markCards();
    showRow(seq);
    if (center && (seq < lo || seq > hi)) { var span = hi - lo; setView(seq - span / 2, seq + span / 2); } else draw();
  }
  function showRow(seq) {
    while (rowpanel.firstChild) rowpanel.removeChild(rowpanel.firstChild);
    var r = rowsBySeq.get(seq);
    if (!r) { rowpanel.appendChild(el("div", { id: "row-seq", "data-seq": String(seq) }, "seq " + seq + ": row not embedded (outside the stretches kept in full)")); return; }
    var o = rowObject(r);
    rowpanel.appendChild(el("div", { id: "row-seq", "data-seq": String(seq) }, "row seq " + seq));
    var tb = el("table"), hr = el("tr"), vr = el("tr");
    Object.keys(o).forEach(function (k) { hr.appendChild(el("th", null, k)); vr.appendChild(el("td", null, String(o[k]))); });
    tb.appendChild(hr); tb.appendChild(vr); rowpanel.appendChild(tb);
  }

  // ---- overview: the whole run, summed over CPUs, with the view
  function drawOverview() {
    var w = ov.clientWidth || W, h = 34, dpr = window.devicePixelRatio || 1;
    ov.width = w * dpr; ov.height = h * dpr;
    var g = ov.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0);
    var sm = D.summary, n = sm.buckets, full = D.seq_hi + 1 - D.seq_lo;
    function OX(s) { return GUT + (s - D.seq_lo) / full * (w - GUT); }
    g.fillStyle = "#555"; g.font = "10px sans-serif"; g.fillText("whole run", 4, 20);
    D.int3_windows.forEach(function (iw) { g.fillStyle = "rgba(255,152,0,0.35)"; g.fillRect(OX(iw.seq_lo), 0, Math.max(1, OX(iw.seq_hi) - OX(iw.seq_lo)), h); });
    for (var b = 0; b < n; b++) {
      var f = 0, d = 0;
      for (var c = 0; c < D.cpus; c++) { f |= sm.flags[c][b]; d = Math.max(d, sm.depth[c][b]); }
      var x = OX(D.seq_lo + b * sm.width);
      if (d) { g.fillStyle = f & 4 ? COL.nmi : f & 1 ? COL.bp : COL.irq; g.fillRect(x, h - 4 - 4 * Math.min(d, 5), 1, 4 * Math.min(d, 5)); }
      if (f & 16) { g.fillStyle = COL.poke; g.fillRect(x, 0, 1, 5); }
    }
    D.findings.forEach(function (fd, i) { g.fillStyle = FCOL[i % FCOL.length]; g.fillRect(OX(fd.seq_first) - 1, 0, 3, h); });
    g.strokeStyle = "#1d2330"; g.lineWidth = 1.5; g.strokeRect(OX(lo), 1, Math.max(2, OX(hi) - OX(lo)), h - 2);
    ov._OX = OX; ov._w = w;
  }
  ov.addEventListener("click", function (ev) {
    var rect = ov.getBoundingClientRect(), x = ev.clientX - rect.left;
    var s = D.seq_lo + (x - GUT) / (ov._w - GUT) * (D.seq_hi + 1 - D.seq_lo), span = hi - lo;
    setView(s - span / 2, s + span / 2);
  });

  // ---- interaction
  tl.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var rect = tl.getBoundingClientRect(), s = SEQ(ev.clientX - rect.left), k = ev.deltaY > 0 ? 1.25 : 0.8;
    setView(s - (s - lo) * k, s + (hi - s) * k);
  }, { passive: false });
  var drag = null;
  tl.addEventListener("mousedown", function (ev) { drag = { x: ev.clientX, lo: lo, hi: hi, moved: false }; tl.classList.add("dragging"); });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    var dx = ev.clientX - drag.x; if (Math.abs(dx) > 2) drag.moved = true;
    var ds = dx / (W - GUT) * (drag.hi - drag.lo);
    setView(drag.lo - ds, drag.hi - ds);
  });
  window.addEventListener("mouseup", function (ev) {
    if (drag && !drag.moved) clickTimeline(ev);
    drag = null; tl.classList.remove("dragging");
  });
  function clickTimeline(ev) {
    var rect = tl.getBoundingClientRect(), x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    var cpu = -1;
    for (var c = 0; c < D.cpus; c++) if (y >= laneTop[c] && y < (c + 1 < D.cpus ? laneTop[c + 1] : H)) cpu = c;
    if (cpu < 0 || x < GUT) return;
    var s = SEQ(x), best = null, bd = Infinity, tol = (hi - lo) / (W - GUT) * 6;
    D.detail.forEach(function (w) {
      if (w.seq_hi < s - tol || w.seq_lo > s + tol) return;
      w.rows.forEach(function (r) { if (r[2] === cpu) { var d = Math.abs(r[0] - s); if (d < bd) { bd = d; best = r; } } });
    });
    if (best && bd <= tol) { selSeq = best[0]; showRow(best[0]); draw(); }
  }
  bAll.addEventListener("click", function () { setView(D.seq_lo, D.seq_hi + 1); });
  bIn.addEventListener("click", function () { var m = (lo + hi) / 2, s = (hi - lo) / 4; setView(m - s, m + s); });
  bOut.addEventListener("click", function () { var m = (lo + hi) / 2, s = (hi - lo); setView(m - s, m + s); });
  window.addEventListener("resize", draw);

  // ---- first view: the first finding's story, else the whole run
  var m = /finding=(\d+)/.exec(location.hash);
  var first = m ? Number(m[1]) : 0;
  if (D.findings.length > first) { zoomFinding(first); var ev0 = D.findings[first].events.filter(function (e) { return e.evidence; })[0]; if (ev0) selectEvent(first, ev0.seq); }
  else draw();

  // ---- self-check (tests open the page with #selfcheck and read #pt-selfcheck)
  window.ptSelfCheck = function () {
    var out = { lanes: document.querySelectorAll(".lane-label").length, cpus: D.cpus, findings: D.findings.length, drawn: 0, clickable: 0, problems: [] };
    D.findings.forEach(function (f, i) {
      var grp = svg.querySelector('g.finding[data-finding="' + i + '"]');
      var dots = svg.querySelectorAll('circle.story-ev[data-finding="' + i + '"]');
      zoomFinding(i);
      grp = svg.querySelector('g.finding[data-finding="' + i + '"]');
      dots = svg.querySelectorAll('circle.story-ev[data-finding="' + i + '"]');
      if (grp && dots.length === f.events.length && f.events.length > 0) out.drawn++; else out.problems.push("finding " + i + ": " + dots.length + " of " + f.events.length + " events drawn");
      var ok = dots.length > 0;
      for (var j = 0; j < dots.length && ok; j++) {
        var d = dots[j], cx = Number(d.getAttribute("cx"));
        if (!(cx >= GUT && cx <= W)) { ok = false; out.problems.push("finding " + i + " event " + j + " off screen at x=" + cx); break; }
        d.dispatchEvent(new MouseEvent("click", { bubbles: true }));
        var rs = document.getElementById("row-seq");
        if (!rs || rs.getAttribute("data-seq") !== d.getAttribute("data-seq") || !rowsBySeq.has(Number(d.getAttribute("data-seq")))) { ok = false; out.problems.push("finding " + i + " event " + j + ": click did not show its row"); }
      }
      if (ok) out.clickable++;
    });
    if (D.findings.length) zoomFinding(first);
    out.errors = errors.slice();
    return out;
  };
  if (/selfcheck/.test(location.hash)) {
    var res = window.ptSelfCheck();
    var pre = el("pre", { id: "pt-selfcheck" }, JSON.stringify(res));
    document.body.appendChild(pre);
  }
})();
