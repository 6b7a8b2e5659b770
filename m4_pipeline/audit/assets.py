"""The report's inline CSS and JavaScript.

Kept as Python strings (not package data files) so they ship with the code however the package
is installed; the report inlines them, so it opens offline from a file:// URL.
"""

CSS = """
:root { --fg:#222; --muted:#666; --line:#ddd; --bg:#fafafa; --human:#eef1f5; --gpt:#e3efff; --bad:#e45756; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0; background: var(--bg); }
header.top { background: #263238; color: #fff; padding: 14px 24px; }
header.top h1 { margin: 0 0 4px; font-size: 20px; }
header.top p { margin: 0; color: #cfd8dc; }
nav { position: sticky; top: 0; background: #fff; border-bottom: 1px solid var(--line); padding: 6px 24px; z-index: 5; }
nav a { margin-right: 16px; color: #1565c0; text-decoration: none; }
main { padding: 8px 24px 40px; max-width: 1400px; }
section { margin: 18px 0 28px; }
h2 { font-size: 17px; border-bottom: 2px solid #263238; padding-bottom: 4px; }
.kpis { display: flex; gap: 12px; flex-wrap: wrap; }
.kpi { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.kpi b { display: block; font-size: 20px; }
.kpi span { color: var(--muted); font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: 12px; }
.chart { width: 100%; height: auto; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.chart .ct { font-size: 13px; font-weight: 600; fill: #222; }
.chart .ax { font-size: 10px; fill: #444; }
.chart .cm { font-size: 10px; fill: #777; }
.chart .grid { stroke: #eee; }
table { border-collapse: collapse; background: #fff; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #eceff1; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.flag td { background: #fdecea; }
tr.flag td:first-child { color: var(--bad); font-weight: 700; }
.ok { color: #2e7d32; } .badtxt { color: var(--bad); font-weight: 600; }
.note { color: var(--muted); font-size: 12px; }
.filters { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; background: #fff; padding: 8px 12px;
           border: 1px solid var(--line); border-radius: 6px; }
#cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; margin-top: 10px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; overflow: hidden; }
.card[hidden] { display: none; }
.card header { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 8px; }
.card .key { font-size: 12px; background: #f1f3f4; padding: 1px 5px; border-radius: 3px; }
.tag { font-size: 11px; background: #e8eaf6; color: #283593; padding: 1px 6px; border-radius: 10px; }
.media { display: flex; flex-wrap: wrap; gap: 6px; }
.m { margin: 0; }
.m .frame { position: relative; display: inline-block; line-height: 0; }
.m img { max-height: 84px; max-width: 150px; border: 1px solid var(--line); border-radius: 3px; }
.m figcaption { font-size: 10px; color: var(--muted); text-align: center; }
.m .box { position: absolute; border: 2px solid #ff1744; box-sizing: border-box; pointer-events: auto; }
.bad { width: 90px; height: 60px; background: #fdecea; color: var(--bad); font-size: 11px; line-height: 60px;
       text-align: center; }
.conv { margin-top: 8px; display: flex; flex-direction: column; gap: 6px; }
.turn { display: flex; gap: 8px; align-items: flex-start; }
.turn.gpt { flex-direction: row-reverse; }
.who { font-size: 10px; color: var(--muted); width: 40px; flex: none; text-align: center; padding-top: 6px; }
.bubble { padding: 6px 10px; border-radius: 10px; max-width: 85%; white-space: normal; overflow-wrap: anywhere; }
.human .bubble { background: var(--human); border-top-left-radius: 2px; }
.gpt .bubble { background: var(--gpt); border-top-right-radius: 2px; }
.ph { background: #fff3e0; color: #e65100; border: 1px solid #ffcc80; border-radius: 4px; padding: 0 3px;
      font-family: ui-monospace, monospace; font-size: 12px; white-space: nowrap; }
.tok { border-radius: 4px; padding: 0 3px; font-family: ui-monospace, monospace; font-size: 11px; cursor: help;
       white-space: nowrap; }
.tok.temp { background: #e8f5e9; color: #1b5e20; } .tok.width { background: #e3f2fd; color: #0d47a1; }
.tok.height { background: #f3e5f5; color: #4a148c; } .tok.missing { background: #fdecea; color: var(--bad); }
.tok .raw { display: none; }
body.raw-tokens .tok .raw { display: inline; } body.raw-tokens .tok .val { display: none; }
details.more > summary { cursor: pointer; color: #1565c0; margin: 8px 0; }
details pre { max-height: 260px; overflow: auto; background: #f7f7f7; padding: 6px; font-size: 11px; }
"""

# Registered before the main script, so an error anywhere (the main script included) is recorded on
# <html data-js-errors>, which a headless check can read from the DOM.
ERROR_HOOK = """
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push(String(e.message));
  document.documentElement.setAttribute('data-js-errors', String(window.__errors.length));
});
"""

JS = """
(function () {
  var cards = Array.prototype.slice.call(document.querySelectorAll('#cards .card'));
  var fDataset = document.getElementById('f-dataset');
  var fTask = document.getElementById('f-task');
  var fText = document.getElementById('f-text');
  var fRaw = document.getElementById('f-raw');
  var count = document.getElementById('f-count');
  function apply() {
    var d = fDataset ? fDataset.value : '', t = fTask ? fTask.value : '';
    var q = fText ? fText.value.trim().toLowerCase() : '';
    var shown = 0;
    cards.forEach(function (c) {
      var ok = (!d || c.dataset.dataset === d) && (!t || c.dataset.task === t) &&
               (!q || c.dataset.text.indexOf(q) !== -1);
      c.hidden = !ok;
      if (ok) { shown += 1; }
    });
    if (count) { count.textContent = shown + ' of ' + cards.length + ' samples'; }
    document.documentElement.setAttribute('data-shown', String(shown));
  }
  function fromHash() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ''));
    if (fDataset && params.get('dataset') !== null) { fDataset.value = params.get('dataset'); }
    if (fTask && params.get('task') !== null) { fTask.value = params.get('task'); }
    if (fText && params.get('q') !== null) { fText.value = params.get('q'); }
  }
  [fDataset, fTask].forEach(function (el) { if (el) { el.addEventListener('change', apply); } });
  if (fText) { fText.addEventListener('input', apply); }
  if (fRaw) {
    fRaw.addEventListener('change', function () { document.body.classList.toggle('raw-tokens', fRaw.checked); });
  }
  window.addEventListener('hashchange', function () { fromHash(); apply(); });
  fromHash();
  apply();
  document.documentElement.setAttribute('data-ready', '1');
})();
"""
