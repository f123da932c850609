/* liqmap charts: find <div class="liqmap-chart" data-spec="x.json"> placeholders and draw them
   with the vendored vega-embed. Specs are fetched relative to the site root. Charts in hidden
   tabs have no width yet, so each chart is drawn when it first becomes visible
   (IntersectionObserver). Material's instant navigation swaps pages without reloading
   scripts, so initialisation hangs off its document$ observable when present.

   Heatmaps (specs with usermeta.liqmap) get a crosshair: the pointer (or a tap) shows the
   price bin and time column under it, exactly as drawn, with that cell's value in the
   legend's unit, read from the compact value grid the spec carries (see
   pipeline/render/charts/heatmap.py, _values_blob). */
(function () {
  "use strict";

  // Spec paths are relative to the site root, found from this script's own URL
  // (<root>/static/js/charts.js): that holds for every page and survives instant navigation.
  var script = document.currentScript && document.currentScript.src;
  var ROOT = script ? script.replace(/static\/js\/charts\.js(\?.*)?$/, "") : document.baseURI;

  function dark() {
    return document.body && document.body.getAttribute("data-md-color-scheme") === "slate";
  }

  function draw(el) {
    if (el.dataset.state) return;
    el.dataset.state = "loading";
    var url = new URL(el.getAttribute("data-spec"), ROOT);
    fetch(url.href, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status + " for " + url.pathname);
        return r.json();
      })
      .then(function (spec) {
        if (dark()) spec.background = "transparent";
        el.liqmapMeta = spec.usermeta && spec.usermeta.liqmap;
        return vegaEmbed(el, spec, {
          renderer: "canvas",
          theme: dark() ? "dark" : undefined,
          actions: { export: true, source: false, compiled: false, editor: false },
        });
      })
      .then(function (result) {
        el.liqmapView = result.view;
        if (el.liqmapMeta) return crosshair(el, result.view, el.liqmapMeta);
      })
      .then(function () { el.dataset.state = "drawn"; })
      .catch(function (err) {
        el.dataset.state = "error";
        el.textContent = "Chart could not be drawn: " + err.message;
        el.classList.add("liqmap-chart--error");
      });
  }

  // -- crosshair ----------------------------------------------------------------
  function money(v) {
    var a = Math.abs(v), f = function (x) { return x.toPrecision(3).replace(/\.?0+$/, ""); };
    if (a >= 1e9) return "$" + f(v / 1e9) + "B";
    if (a >= 1e6) return "$" + f(v / 1e6) + "M";
    if (a >= 1e3) return "$" + f(v / 1e3) + "k";
    return "$" + f(v);
  }

  function decode(blob, m, k) {
    // base64 -> zlib -> uint16 little-endian differences along time -> codes (k rows of m).
    var bytes = Uint8Array.from(atob(blob), function (c) { return c.charCodeAt(0); });
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) {
      var dv = new DataView(buf), codes = new Uint16Array(m * k);
      for (var j = 0; j < k; j++) {
        var acc = 0;
        for (var i = 0; i < m; i++) {
          acc = (acc + dv.getUint16(2 * (j * m + i), true)) & 0xffff;
          codes[j * m + i] = acc;
        }
      }
      return codes;
    });
  }

  // The plot rectangle of the map (the first unit of a vconcat, or the whole layer), in canvas px.
  function plotRect(view) {
    var root = view.scenegraph().root.items[0], o = view.origin();
    var found = null;
    (function walk(item, ox, oy) {
      (item.items || []).forEach(function (mark) {
        if (found || mark.marktype !== "group") return;
        (mark.items || []).forEach(function (g) {
          if (found) return;
          if (mark.name === "concat_0_group") found = { x: ox + g.x, y: oy + g.y, w: g.width, h: g.height };
          else walk(g, ox + (g.x || 0), oy + (g.y || 0));
        });
      });
    })(root, o[0] + (root.x || 0), o[1] + (root.y || 0));
    return found || { x: o[0], y: o[1], w: view.width(), h: view.height() };
  }

  function scale(view, names) {
    for (var i = 0; i < names.length; i++) { try { return view.scale(names[i]); } catch (e) { /* next */ } }
    return null;
  }

  function crosshair(el, view, meta) {
    if (typeof DecompressionStream === "undefined") return null;
    var keys = Object.keys(meta.values);
    return Promise.all(keys.map(function (b) { return decode(meta.values[b][0], meta.m, meta.k); }))
      .then(function (decoded) {
        var grids = {};
        keys.forEach(function (b, n) {
          var e = meta.values[b];
          grids[b] = { codes: decoded[n], vtop: e[1], step: e[2], offset: e[3] };
        });
        var candles = null;
        try {
          candles = {};
          view.data("candles").forEach(function (r) { candles[r.i] = r; });
        } catch (e) { candles = null; }
        var box = el.querySelector(".vega-embed") || el;
        var vline = document.createElement("div"), hline = document.createElement("div");
        var tip = document.createElement("div");
        vline.className = "liqmap-xhair liqmap-xhair--v";
        hline.className = "liqmap-xhair liqmap-xhair--h";
        tip.className = "liqmap-tip";
        tip.setAttribute("role", "status");
        [vline, hline, tip].forEach(function (d) { d.hidden = true; box.appendChild(d); });
        var canvas = box.querySelector("canvas");
        var digits = +((meta.price_format.match(/\.(\d)f/) || [0, 0])[1]);
        var nf = new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
        var pfmt = function (x) { return nf.format(x); };
        var MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        var two = function (n) { return (n < 10 ? "0" : "") + n; };
        var tfmt = function (d) {
          return two(d.getUTCDate()) + " " + MON[d.getUTCMonth()] + " " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes());
        };

        function hide() { vline.hidden = hline.hidden = tip.hidden = true; }
        function show(ev) {
          var r = canvas.getBoundingClientRect(), bx = box.getBoundingClientRect();
          var plot = plotRect(view);
          var px = ev.clientX - r.left - plot.x, py = ev.clientY - r.top - plot.y;
          if (px < 0 || py < 0 || px > plot.w || py > plot.h) return hide();
          var xs = scale(view, ["x", "concat_0_x", "layer_0_x"]), ys = scale(view, ["concat_0_y", "y", "layer_0_y"]);
          if (!xs || !ys) return hide();
          var t = +xs.invert(px), p = ys.invert(py);
          var i = Math.floor((t - meta.t0) / meta.step);
          var bw = (meta.p1 - meta.p0) / meta.k, j = Math.floor((p - meta.p0) / bw);
          if (i < 0 || i >= meta.m || j < 0 || j >= meta.k) return hide();
          var band = "all";
          try { band = view.signal("lev") || "all"; } catch (e) { /* no leverage filter */ }
          var gr = grids[band] || grids.all, code = gr.codes[j * meta.m + i];
          var value = code ? gr.vtop * Math.pow(gr.step, code - 1 - gr.offset) : 0;
          var lo = meta.p0 + j * bw, a = meta.t0 + i * meta.step;
          var html = "<b>$" + pfmt(lo) + " – $" + pfmt(lo + bw) + "</b><br>" +
            (value ? money(value) : "$0") + " est. liquidations in this bin" +
            (band !== "all" ? " (" + band + " leverage)" : "") + "<br>" +
            tfmt(new Date(a)) + " – " + tfmt(new Date(a + meta.step)) + " UTC";
          var c = candles && candles[i];
          if (c) html += "<br>O " + pfmt(c.o) + " H " + pfmt(c.h) + " L " + pfmt(c.l) + " C " + pfmt(c.c);
          tip.innerHTML = html;
          var ox = r.left - bx.left, oy = r.top - bx.top;
          vline.style.left = (ox + plot.x + (xs(a + meta.step / 2) || px)) + "px";
          vline.style.top = (oy + plot.y) + "px";
          vline.style.height = plot.h + "px";
          hline.style.top = (oy + plot.y + ys(lo + bw / 2)) + "px";
          hline.style.left = (ox + plot.x) + "px";
          hline.style.width = plot.w + "px";
          vline.hidden = hline.hidden = tip.hidden = false;
          var tx = ox + plot.x + px + 12, ty = oy + plot.y + py + 12;
          if (tx + tip.offsetWidth > ox + plot.x + plot.w) tx = Math.max(0, ox + plot.x + px - 12 - tip.offsetWidth);
          if (ty + tip.offsetHeight > oy + plot.y + plot.h) ty = Math.max(0, oy + plot.y + py - 12 - tip.offsetHeight);
          tip.style.left = tx + "px";
          tip.style.top = ty + "px";
          el.liqmapCell = { i: i, j: j, value: value, band: band };
        }
        canvas.addEventListener("pointermove", show);
        canvas.addEventListener("pointerdown", show);  // a tap on a phone
        canvas.addEventListener("pointerleave", function (ev) { if (ev.pointerType === "mouse") hide(); });
        view.addSignalListener("zoom_x", hide);
      })
      .catch(function () { /* the chart stays usable without the crosshair */ });
  }

  var observer = null;
  function init() {
    var charts = document.querySelectorAll(".liqmap-chart[data-spec]");
    if (!charts.length) return;
    if (observer) observer.disconnect();
    if (!("IntersectionObserver" in window)) { charts.forEach(draw); return; }
    observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) { observer.unobserve(e.target); draw(e.target); }
      });
    }, { rootMargin: "200px" });
    charts.forEach(function (el) { if (!el.dataset.state) observer.observe(el); });
  }

  // The palette toggle flips data-md-color-scheme on <body>: redraw the drawn charts in the
  // new theme (charts not drawn yet pick it up when they become visible).
  var scheme = dark();
  new MutationObserver(function () {
    if (dark() === scheme) return;
    scheme = dark();
    document.querySelectorAll('.liqmap-chart[data-state="drawn"]').forEach(function (el) {
      if (el.liqmapView) el.liqmapView.finalize();
      el.liqmapView = null;
      el.textContent = "";
      delete el.dataset.state;
      draw(el);
    });
  }).observe(document.body, { attributes: true, attributeFilter: ["data-md-color-scheme"] });

  if (typeof document$ !== "undefined" && document$.subscribe) {
    document$.subscribe(init);  // fires on first load and after every instant navigation
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
