// Charts of the overview page, from the data the server put in #chart-data (JSON, not
// script). Without Chart.js (npm not available at install), the tables below stay.
(function () {
  var data = document.getElementById("chart-data");
  if (!data || typeof Chart === "undefined") { return; }
  var d = JSON.parse(data.textContent);
  var palette = ["#4f46e5", "#16a34a", "#dc2626", "#d97706", "#0891b2", "#9333ea"];
  function chart(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { canvas.chart = new Chart(canvas, config); canvas.setAttribute("data-rendered", "true"); }
  }
  var opts = { responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom" } }, scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } };
  chart("turns-chart", { type: "bar", data: { labels: d.labels, datasets: [
    { label: "cited", data: d.cited, backgroundColor: palette[1] },
    { label: "no source", data: d.no_source, backgroundColor: palette[3] },
    { label: "other", data: d.other, backgroundColor: "#a5b4fc" },
    { label: "failed", data: d.failed, backgroundColor: palette[2] }] }, options: opts });
  chart("cost-chart", { type: "line", data: { labels: d.labels, datasets: [
    { label: "tokens", data: d.tokens, borderColor: palette[0], yAxisID: "y", tension: 0.25 },
    { label: "cost (USD)", data: d.cost, borderColor: palette[4], yAxisID: "y1", tension: 0.25 }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true }, y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } } });
  chart("channel-chart", { type: "doughnut", data: { labels: d.channel_labels, datasets: [
    { data: d.channel_counts, backgroundColor: palette }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "right" } } } });
  chart("users-chart", { type: "line", data: { labels: d.labels, datasets: [
    { label: "active users", data: d.users, borderColor: palette[5], tension: 0.25, fill: false }] },
    options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
})();
