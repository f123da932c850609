/* liqmap charts: find <div class="liqmap-chart" data-spec="x.json"> placeholders and draw them
   with the vendored vega-embed. Specs are fetched relative to the site root. Charts in hidden
   tabs have no width yet, so each chart is drawn when it first becomes visible
   (IntersectionObserver). Material's instant navigation swaps pages without reloading
   scripts, so initialisation hangs off its document$ observable when present. */
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
        return vegaEmbed(el, spec, {
          renderer: "canvas",
          theme: dark() ? "dark" : undefined,
          actions: { export: true, source: false, compiled: false, editor: false },
        });
      })
      .then(function (result) { el.liqmapView = result.view; el.dataset.state = "drawn"; })
      .catch(function (err) {
        el.dataset.state = "error";
        el.textContent = "Chart could not be drawn: " + err.message;
        el.classList.add("liqmap-chart--error");
      });
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
