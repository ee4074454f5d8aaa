/* dbmaint report: draws the charts of the JSON block #report-data with uPlot (inlined after this script).
   Errors are written into the page (data-errors on <html>, and #report-errors), so that a headless browser
   and a reader both see them; each chart that was drawn gets data-rendered="true". */
(function () {
  "use strict";
  var root = document.documentElement;
  var errors = [];
  var plots = [];
  root.className += " js";

  function fail(message) {
    errors.push(String(message));
    root.setAttribute("data-errors", errors.join(" | "));
    var box = document.getElementById("report-errors");
    if (box) {
      box.hidden = false;
      box.textContent = "Some charts could not be drawn: " + errors.join("; ");
    }
  }

  window.addEventListener("error", function (event) {
    fail(event.message || "script error");
  });
  document.addEventListener("securitypolicyviolation", function (event) {
    fail("blocked by the page's policy: " + event.violatedDirective);
  });

  function fixed(value, digits) {
    var text = value.toFixed(digits);
    return text.indexOf(".") >= 0 ? text.replace(/\.?0+$/, "") : text;
  }

  function scaled(value, base, units) {
    var sign = value < 0 ? "-" : "";
    var magnitude = Math.abs(value);
    var unit = 0;
    while (magnitude >= base && unit < units.length - 1) {
      magnitude /= base;
      unit += 1;
    }
    return sign + fixed(magnitude, magnitude >= 100 || unit === 0 ? 0 : 1) + units[unit];
  }

  var FORMATS = {
    count: function (v) { return scaled(v, 1000, ["", "k", "M", "G"]); },
    bytes: function (v) { return scaled(v, 1024, [" B", " kB", " MB", " GB", " TB"]); },
    s: function (v) {
      if (v < 120) { return fixed(v, v < 10 ? 1 : 0) + " s"; }
      if (v < 7200) { return fixed(v / 60, 1) + " min"; }
      return fixed(v / 3600, 1) + " h";
    },
    ms: function (v) { return v < 1000 ? fixed(v, v < 10 ? 1 : 0) + " ms" : fixed(v / 1000, 1) + " s"; }
  };

  // Tick steps that read as round figures: seconds as minutes and hours, bytes in binary units.
  var STEPS = { s: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400], bytes: [] };
  [1, 2, 5, 10, 20, 50, 100, 200, 500].forEach(function (m) {
    for (var power = 0; power < 6; power += 1) { STEPS.bytes.push(m * Math.pow(1024, power)); }
  });
  STEPS.bytes.sort(function (a, b) { return a - b; });

  function utc(seconds) {
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function width(box) {
    return Math.max(280, Math.floor(box.clientWidth || 600));
  }

  function draw(chart, since, until) {
    var box = document.getElementById(chart.id);
    if (!box) {
      throw new Error("no place on the page for " + chart.id);
    }
    var format = FORMATS[chart.unit] || FORMATS.count;
    var series = [{ label: "time (UTC)", value: function (u, v) { return v == null ? "--" : utc(v); } }];
    chart.series.forEach(function (s) {
      var points = s.style === "points";
      series.push({
        label: s.label,
        stroke: s.colour,
        width: points ? 0 : 2,
        spanGaps: true,
        paths: points ? function () { return null; } : undefined,
        points: points ? { show: true, size: 6, space: 0, fill: s.colour, stroke: s.colour } : { show: false },
        value: function (u, v) { return v == null ? "--" : format(v); }
      });
    });
    var options = {
      width: width(box),
      height: 240,
      // The axis reads UTC, as every time on the page does.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: {
        x: { time: true, range: function () { return [since, until]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.08 : 1]; } }
      },
      axes: [
        {},
        { size: 72, incrs: STEPS[chart.unit], values: function (u, ticks) { return ticks.map(format); } }
      ],
      series: series,
      legend: { live: true }
    };
    var data = [chart.x].concat(chart.series.map(function (s) { return s.values; }));
    plots.push({ plot: new uPlot(options, data, box), box: box });
    box.setAttribute("data-rendered", "true");
  }

  function resize() {
    plots.forEach(function (p) { p.plot.setSize({ width: width(p.box), height: 240 }); });
  }

  function drawAll() {
    if (typeof uPlot === "undefined") {
      fail("the chart library did not load");
      return;
    }
    var data;
    try {
      data = JSON.parse(document.getElementById("report-data").textContent);
    } catch (e) {
      fail("the chart data could not be read: " + e.message);
      return;
    }
    data.charts.forEach(function (chart) {
      try {
        draw(chart, data.since, data.until);
      } catch (e) {
        fail(chart.id + ": " + e.message);
      }
    });
    root.setAttribute("data-charts-rendered", String(plots.length));
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(resize, 100);
    });
    // Printed pages are narrower than the screen: fit the canvases before printing, and back after.
    window.addEventListener("beforeprint", resize);
    window.addEventListener("afterprint", resize);
  }

  document.addEventListener("DOMContentLoaded", drawAll);
})();
