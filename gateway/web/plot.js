// Inline SVG plot: the person's locations and where each connection
// happened.  Equirectangular projection around the points' centre (x scaled
// by cos(latitude)), no map tiles: works offline.
const NS = 'http://www.w3.org/2000/svg';

function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

export function renderPlot(container, own, met) {
  container.textContent = '';
  const W = 640, H = 360, PAD = 28;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img',
                          'aria-label': `${own.length} locations, ${met.length} meeting points` }, container);
  const all = own.concat(met);
  if (all.length === 0) {
    el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', fill: '#5b6475' }, svg)
      .textContent = 'No locations in this date range';
    return svg;
  }
  const lat0 = all.reduce((s, p) => s + p.latitude, 0) / all.length;
  const k = Math.max(Math.cos(lat0 * Math.PI / 180), 0.01);
  const xs = all.map((p) => p.longitude * k), ys = all.map((p) => p.latitude);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0, 1e-5);   // >= ~1 m: a single point stays centred
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const scale = Math.min(W - 2 * PAD, H - 2 * PAD) / span;
  const X = (p) => W / 2 + (p.longitude * k - cx) * scale;
  const Y = (p) => H / 2 - (p.latitude - cy) * scale;

  // scale bar: metres per pixel from degrees of latitude (~111.2 km)
  const mPerPx = 111195 / scale;
  const nice = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 1e6]
    .find((m) => m / mPerPx >= 60) || 1e6;
  const len = nice / mPerPx;
  el('line', { x1: PAD, y1: H - 12, x2: PAD + len, y2: H - 12, stroke: '#5b6475', 'stroke-width': 2 }, svg);
  el('text', { x: PAD, y: H - 18, 'font-size': 11, fill: '#5b6475' }, svg)
    .textContent = nice >= 1000 ? `${nice / 1000} km` : `${nice} m`;

  const gOwn = el('g', { class: 'own' }, svg);
  for (const p of own) {
    const c = el('circle', { cx: X(p), cy: Y(p), r: 6, fill: '#1f6feb', 'fill-opacity': 0.55,
                             stroke: '#1f6feb' }, gOwn);
    el('title', {}, c).textContent = `${p.latitude}, ${p.longitude} at ${p.creation_time}`;
  }
  const gMet = el('g', { class: 'met' }, svg);
  for (const p of met) {
    const x = X(p), y = Y(p), s = 6;
    const g = el('g', {}, gMet);
    el('path', { d: `M${x - s},${y - s}L${x + s},${y + s}M${x - s},${y + s}L${x + s},${y - s}`,
                 stroke: '#d1242f', 'stroke-width': 3 }, g);
    el('title', {}, g).textContent = `${p.label}: ${p.latitude}, ${p.longitude} at ${p.creation_time}`;
  }
  return svg;
}
