/**
 * The script the HTML report runs in the browser, as text (it is inlined, never fetched). It reads
 * the JSON data block and draws every chart with uPlot (inlined before it as the global `uPlot`).
 *
 * Grouped bars: uPlot has one x array per chart, so a bar chart of G groups and S series puts
 * group g, series s at x = g*(S+1) + s (one empty slot between groups) and gives each series values
 * only at its own slots. The x axis labels each group at its centre.
 *
 * When every chart has drawn once, the document gets a "charts-drawn" event and then
 * `document.body.dataset.charts` holds the number of charts (what the browser test waits for).
 */
export const CLIENT_SCRIPT = `
"use strict";
(function () {
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var WIDTH = 560, HEIGHT = 300;
  var total = 0, drawn = 0;

  function onDraw(el) {
    return function () {
      if (el.dataset.drawn) return;
      el.dataset.drawn = "1";
      if (++drawn === total) {
        document.dispatchEvent(new Event("charts-drawn"));
        document.body.dataset.charts = String(drawn);
      }
    };
  }

  function fmt(v) {
    if (v == null) return "–";
    var a = Math.abs(v);
    if (a >= 1000 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
    if (a === 0) return "0";
    var d = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(a)));
    return v.toFixed(d);
  }

  function axes(xLabel, yLabel, xValues, xSplits) {
    var x = { label: xLabel, stroke: "#333", grid: { show: false } };
    if (xValues) { x.values = xValues; x.splits = xSplits; x.rotate = -20; x.size = 70; }
    return [x, { label: yLabel, stroke: "#333", size: 70, values: function (u, vs) { return vs.map(fmt); } }];
  }

  function groupedBars(el, spec) {
    var G = spec.groups.length, S = spec.series.length, W = S + 1;
    var xs = [];
    for (var i = 0; i < G * W - 1; i++) xs.push(i);
    var data = [xs];
    var series = [{ label: spec.groupLabel, value: function (u, v) { return v == null ? "" : spec.groups[Math.floor(v / W)]; } }];
    spec.series.forEach(function (s, si) {
      var ys = xs.map(function (x) {
        return x % W === si ? s.values[Math.floor(x / W)] : null;
      });
      data.push(ys);
      series.push({
        label: s.label, stroke: s.color, fill: s.color, width: 0,
        paths: uPlot.paths.bars({ size: [0.95, 80], align: 0 }),
        points: { show: false },
        value: function (u, v) { return v == null ? "" : fmt(v) + " " + spec.unit; },
      });
    });
    var splits = spec.groups.map(function (_, g) { return g * W + (S - 1) / 2; });
    new uPlot({
      width: WIDTH, height: HEIGHT,
      scales: { x: { time: false, range: [-0.6, G * W - 1.4] }, y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } } },
      legend: { live: false },
      cursor: { points: { show: false } },
      axes: axes(spec.xLabel, spec.yLabel, function () { return spec.groups; }, function () { return splits; }),
      series: series,
      hooks: { draw: [onDraw(el)] },
    }, data, el);
  }

  function lines(el, spec) {
    var tables = spec.series.map(function (s) { return [s.t, s.y]; });
    var data = uPlot.join(tables);
    var series = [{ label: spec.xLabel }];
    spec.series.forEach(function (s) {
      series.push({ label: s.label, stroke: s.color, width: 2, spanGaps: true, points: { show: false },
        value: function (u, v) { return v == null ? "" : fmt(v) + " " + spec.unit; } });
    });
    new uPlot({
      width: WIDTH, height: HEIGHT,
      scales: { x: { time: false }, y: { range: function (u, lo, hi) { return [0, hi > 0 ? hi * 1.1 : 1]; } } },
      axes: axes(spec.xLabel, spec.yLabel),
      series: series,
      hooks: { draw: [onDraw(el)] },
    }, data, el);
  }

  var KINDS = { bars: groupedBars, lines: lines };
  var figures = document.querySelectorAll("figure.chart[data-chart]");
  total = figures.length;
  if (total === 0) document.body.dataset.charts = "0";
  for (var i = 0; i < figures.length; i++) {
    var fig = figures[i];
    var spec = DATA.charts[fig.dataset.chart];
    KINDS[spec.kind](fig.querySelector(".plot"), spec);
  }
})();
`;
