/* The Reports page's charts: Chart.js draws each table's numbers (the JSON in #report-data).
   The tables stay on the page: the chart is for a glance, the numbers for reading. */
(function () {
  "use strict";
  var source = document.getElementById("report-data");
  if (!source || typeof Chart === "undefined") return;
  var css = getComputedStyle(document.documentElement);
  var named = {
    English: css.getPropertyValue("--en").trim() || "#1f5fbf",
    Spanish: css.getPropertyValue("--es").trim() || "#e07b00",
    "No language chosen": "#9aa3b2",
    Urgent: css.getPropertyValue("--new").trim() || "#b3261e",
  };
  var palette = ["#1f5fbf", "#2e7d32", "#e07b00", "#7b3fa0", "#9aa3b2"];
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.font.size = window.innerWidth < 600 ? 12 : 13;
  Chart.defaults.color = css.getPropertyValue("--ink").trim() || "#1d2330";

  // Long labels beside horizontal bars, in lines of a few words: a phone would cut them off.
  function wrap(label, width) {
    var lines = [""];
    label.split(" ").forEach(function (word) {
      var last = lines.length - 1;
      if (lines[last] && (lines[last] + " " + word).length > width) lines.push(word);
      else lines[last] = lines[last] ? lines[last] + " " + word : word;
    });
    return lines.length === 1 ? lines[0] : lines;
  }

  JSON.parse(source.textContent).forEach(function (c) {
    var canvas = document.getElementById("chart-" + c.id);
    if (!canvas) return;
    if (c.horizontal) {
      // A bar per label, tall enough to read each label on a phone.
      var perLabel = (window.innerWidth < 600 ? 40 : 30) * (c.stacked ? 1 : Math.max(1, c.series.length / 1.5));
      canvas.parentNode.style.height = Math.max(200, 56 + c.labels.length * perLabel) + "px";
    }
    var datasets = c.series.map(function (s, i) {
      return { label: s.name, data: s.values, backgroundColor: named[s.name] || palette[i % palette.length] };
    });
    if (c.target !== null && !c.horizontal) {
      datasets.push({
        type: "line", label: "Target (" + c.target + c.unit + ")",
        data: c.labels.map(function () { return c.target; }),
        borderColor: named.Urgent, borderDash: [6, 4], borderWidth: 2, pointRadius: 0, fill: false,
      });
    }
    var value = c.horizontal ? "x" : "y";
    var scales = { x: { stacked: c.stacked }, y: { stacked: c.stacked } };
    scales[value].beginAtZero = true;
    scales[value].ticks = { precision: 0 };
    scales[c.horizontal ? "y" : "x"].ticks = { autoSkip: !c.horizontal };  // every step named
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: c.horizontal ? c.labels.map(function (l) { return wrap(l, window.innerWidth < 600 ? 16 : 28); }) : c.labels,
        datasets: datasets,
      },
      options: {
        indexAxis: c.horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: scales,
        plugins: { legend: { position: "bottom", labels: { boxWidth: 14 } } },
      },
    });
    canvas.dataset.rendered = "true";
  });
})();
