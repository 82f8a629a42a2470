// uPlot wrappers: a time-series chart and a bar chart over named groups.

import uPlot from 'uplot';
import { html, useEffect, useRef } from './lib.js';

export const ACCENT = '#2456d3';
export const ACCENT_2 = '#8aa6ec';
export const RED = '#c9302c';
const GRID = '#e8eaee';
const AXIS = '#5b6270';

const axis = (values, size) => ({
  stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 },
  font: '11px system-ui, sans-serif', ...(values ? { values } : {}), ...(size ? { size } : {}),
});

/** Keep a uPlot instance as wide as its container. */
function usePlot(el, make, deps) {
  const plot = useRef(null);
  useEffect(() => {
    const node = el.current;
    if (!node) return undefined;
    const width = Math.max(200, node.clientWidth);
    plot.current = make(width);
    let raf = 0;
    const ro = new ResizeObserver(() => {
      cancelAnimationFrame(raf);
      raf = requestAnimationFrame(() => {
        const w = Math.max(200, node.clientWidth);
        if (plot.current && Math.abs(plot.current.width - w) > 1) plot.current.setSize({ width: w, height: plot.current.height });
      });
    });
    ro.observe(node);
    return () => { ro.disconnect(); cancelAnimationFrame(raf); plot.current?.destroy(); plot.current = null; };
  }, deps);
}

/**
 * Time series. x: unix seconds; series: [{ label, values, color, fill?, dash? }]; fmt: y value → text.
 */
export function TimeChart({ title, x, series, fmt = (v) => String(v), height = 180 }) {
  const el = useRef(null);
  usePlot(el, (width) => new uPlot({
    width,
    height,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [axis(), axis((u, vals) => vals.map((v) => fmt(v)), 64)],
    series: [
      { value: (u, v) => (v === null || v === undefined ? '—' : new Date(v * 1000).toLocaleTimeString()) },
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        fill: s.fill ? `${s.color}22` : undefined,
        dash: s.dash,
        spanGaps: false,
        // a value between two gaps has no line: draw it as a point
        points: { show: s.values.some((v, i) => v !== null && v !== undefined && s.values[i - 1] == null && s.values[i + 1] == null), size: 6 },
        value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
      })),
    ],
  }, [x, ...series.map((s) => s.values)], el.current), [x, series, height]);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div class="plot" ref=${el}></div>
  </figure>`;
}

/**
 * Bars over named groups. labels: names; series: [{ label, values, color }].
 */
export function BarChart({ title, labels, series, fmt = (v) => String(v), height = 200 }) {
  const el = useRef(null);
  const n = series.length;
  const short = (s) => (s.length > 14 ? `${s.slice(0, 13)}…` : s);
  usePlot(el, (width) => new uPlot({
    width,
    height,
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    legend: { live: true },
    scales: { x: { time: false, range: (u) => [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1] } },
    axes: [
      axis((u, vals) => vals.map((v) => (Number.isInteger(v) && labels[v] !== undefined ? short(labels[v]) : ''))),
      axis((u, vals) => vals.map((v) => fmt(v)), 64),
    ],
    series: [
      { value: (u, v) => (v === null || v === undefined ? '—' : labels[v] ?? '') },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color,
        fill: s.color,
        width: 0,
        points: { show: false },
        paths: uPlot.paths.bars({
          size: [1, 80],
          disp: {
            x0: { unit: 1, values: () => labels.map((_, j) => j - 0.35 + i * (0.7 / n)) },
            size: { unit: 1, values: () => [0.7 / n] },
          },
        }),
        value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
      })),
    ],
  }, [labels.map((_, i) => i), ...series.map((s) => s.values)], el.current), [labels, series, height]);
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <div class="plot" ref=${el}></div>
  </figure>`;
}
