// The utilisation page's plots (uPlot): the data and the words come from the page, dates in its language.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("utilisation-data").textContent);
  const words = JSON.parse(document.getElementById("utilisation-words").textContent);
  const lang = document.documentElement.lang || "en";
  const dateFormat = new Intl.DateTimeFormat(lang, { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" });
  const span = data.at.length ? data.at[data.at.length - 1] - data.at[0] : 0;
  // Ticks of a long range say the day, of a short one the time too.
  const tickFormat = span > 2 * 86400 ? new Intl.DateTimeFormat(lang, { month: "numeric", day: "numeric" }) : dateFormat;
  const when = (u, splits) => splits.map((v) => (v == null ? "" : tickFormat.format(new Date(v * 1000))));

  function width(el) { return Math.max(320, el.clientWidth || el.parentElement.clientWidth - 32); }

  function timePlot(id, series, values) {
    const el = document.getElementById(id);
    if (!el) return;
    const opts = {
      width: width(el), height: 260,
      series: [{ label: words.time, value: (u, v) => (v == null ? "" : dateFormat.format(new Date(v * 1000))) }].concat(series),
      axes: [{ values: when, space: 90 }, { size: 50 }],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    };
    new uPlot(opts, [data.at].concat(values), el);
  }

  timePlot("plot-gpus", [
    { label: words.total, stroke: "#475569", width: 2, dash: [6, 4] },
    { label: words.allocated, stroke: "#2563eb", width: 2, fill: "rgba(37, 99, 235, 0.15)" },
  ], [data.total, data.allocated]);
  timePlot("plot-queue", [{ label: words.queued, stroke: "#d97706", width: 2, fill: "rgba(217, 119, 6, 0.12)" }], [data.queued]);

  const waits = document.getElementById("plot-waits");
  if (waits && data.wait_count.length) {
    const bars = uPlot.paths.bars({ size: [0.9, 80], align: 0 });
    const last = data.wait_high.length - 1;
    const centres = data.wait_low.map((low, i) => (low + data.wait_high[i]) / 2);
    new uPlot({
      width: width(waits), height: 220,
      scales: {
        x: { time: false, range: () => [data.wait_low[0], Math.max(data.wait_high[last], data.wait_low[0] + 1)] },
        y: { range: (u, min, max) => [0, Math.max(1, max)] },
      },
      series: [
        { label: words.minutes, value: (u, v, s, i) => (i == null ? "" : data.wait_low[i] + "–" + data.wait_high[i]) },
        { label: words.tasks, stroke: "#15803d", fill: "rgba(21, 128, 61, 0.5)", paths: bars, points: { show: false } },
      ],
      axes: [{ label: words.minutes }, { size: 40 }],
    }, [centres, data.wait_count], waits);
  }
})();
