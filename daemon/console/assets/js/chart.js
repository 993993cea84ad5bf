// Hand-written SVG charts (a few hundred bytes of code instead of a charting library): lines with a legend whose
// entries toggle their line, and bars. Colours come from CSS classes (series-N), sizes from the viewBox.
import {h, s} from './dom.js';

const W = 640, H = 240, PAD = {l: 40, r: 24, t: 12, b: 28};  // r: room for the last day's label

function niceMax(v) {
  if (v <= 4) return 4;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function axes(svg, max, labels, xOf) {
  const plotH = H - PAD.t - PAD.b;
  for (let i = 0; i <= 4; i++) {
    const y = PAD.t + plotH - (plotH * i) / 4;
    svg.append(s('line', {x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'grid'}));
    svg.append(s('text', {x: PAD.l - 6, y: y + 4, class: 'tick', 'text-anchor': 'end'}, String(Math.round((max * i) / 4))));
  }
  const every = Math.ceil(labels.length / 8);
  labels.forEach((l, i) => {
    if (i % every) return;
    svg.append(s('text', {x: xOf(i), y: H - 8, class: 'tick', 'text-anchor': 'middle'}, l));
  });
}

// series: [{key, name, values: [numbers]}]; labels: x labels. Returns a figure with the SVG and the legend.
export function lineChart({title, labels, series}) {
  const max = niceMax(Math.max(0, ...series.flatMap(x => x.values)));
  const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
  const xOf = i => PAD.l + (labels.length > 1 ? (plotW * i) / (labels.length - 1) : plotW / 2);
  const yOf = v => PAD.t + plotH - (plotH * v) / max;
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title});
  axes(svg, max, labels, xOf);
  const legend = h('ul', {class: 'legend', 'aria-label': `${title}: show or hide a line`});
  series.forEach((x, n) => {
    const g = s('g', {class: `series series-${n}`, 'data-key': x.key});
    g.append(s('polyline', {points: x.values.map((v, i) => `${xOf(i)},${yOf(v)}`).join(' '), fill: 'none'}));
    x.values.forEach((v, i) => g.append(s('circle', {cx: xOf(i), cy: yOf(v), r: 2.5},
      s('title', {}, `${labels[i]}: ${v} ${x.name}`))));
    svg.append(g);
    const total = x.values.reduce((a, b) => a + b, 0);
    const btn = h('button', {type: 'button', class: `legend-item series-${n}`, 'aria-pressed': 'true', 'data-key': x.key,
      onclick: () => {
        const on = btn.getAttribute('aria-pressed') !== 'true';
        btn.setAttribute('aria-pressed', String(on));
        g.classList.toggle('hidden', !on);
      }}, h('span', {class: 'swatch', 'aria-hidden': 'true'}), `${x.name} (${total})`);
    legend.append(h('li', {}, btn));
  });
  return h('figure', {class: 'chart-figure'}, h('figcaption', {}, title), svg, legend);
}

export function barChart({title, labels, values}) {
  const max = niceMax(Math.max(0, ...values));
  const plotW = W - PAD.l - PAD.r, plotH = H - PAD.t - PAD.b;
  const step = plotW / values.length;
  const xOf = i => PAD.l + step * i + step / 2;
  const svg = s('svg', {viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title});
  axes(svg, max, labels, xOf);
  values.forEach((v, i) => {
    const bh = (plotH * v) / max;
    svg.append(s('rect', {x: PAD.l + step * i + step * 0.15, y: PAD.t + plotH - bh, width: step * 0.7, height: bh, class: 'bar'},
      s('title', {}, `${labels[i]}: ${v}`)));
  });
  return h('figure', {class: 'chart-figure'}, h('figcaption', {}, title), svg);
}
