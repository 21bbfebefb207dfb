import { Resvg } from '@resvg/resvg-js';
import type { TimelinePoint } from './timeline.js';

/**
 * PNG charts of a run's timeline: deliveries per second (top) and latency p50/p99 on a log scale
 * (bottom) against seconds, one line segment per step, step boundaries marked. The chart is built
 * as SVG text (pure, tested) and rasterised by resvg; text needs a system font (Debian
 * fonts-dejavu-core, which `npm run bench` installs).
 */

const W = 960;
const H = 600;
const LEFT = 80;
const RIGHT = W - 24;
const TOP_PANEL = { y0: 70, y1: 300 };
const LOW_PANEL = { y0: 350, y1: 550 };

/** At most about `count` round tick values from 0 to at least `max` (steps of 1, 2 or 5 x 10^k). */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * mag >= raw) as number) * mag;
  const ticks: number[] = [];
  for (let v = 0; v < max + step - 1e-9; v += step) ticks.push(Math.round(v * 1e6) / 1e6);
  return ticks;
}

/** Powers of ten covering [min, max] on a log axis (at least two). */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(Math.max(min, 1e-3)));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(Math.max(max, 1e-3))));
  const out: number[] = [];
  for (let e = lo; e <= hi; e++) out.push(10 ** e);
  return out;
}

/** 1500 -> "1.5k", 1200000 -> "1.2M"; ms values below 1 keep their decimals. */
export function shortNumber(v: number): string {
  const trim = (x: number): string => String(Math.round(x * 10) / 10);
  if (Math.abs(v) >= 1e6) return `${trim(v / 1e6)}M`;
  if (Math.abs(v) >= 1e3) return `${trim(v / 1e3)}k`;
  return v < 1 && v > 0 ? String(v) : trim(v);
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Consecutive points of the same step: lines are not drawn across the pauses between steps. */
export function segments(points: readonly TimelinePoint[]): TimelinePoint[][] {
  const out: TimelinePoint[][] = [];
  for (const p of points) {
    const last = out[out.length - 1];
    if (last !== undefined && (last[0] as TimelinePoint).step === p.step) last.push(p);
    else out.push([p]);
  }
  return out;
}

/** `title`: the first line is drawn large, the rest (the target's description) small below it. */
export function timelineSvg(title: string, points: readonly TimelinePoint[]): string {
  const tMax = Math.max(1, ...points.map((p) => p.t));
  const xTicks = niceTicks(tMax, 8);
  const xEnd = xTicks[xTicks.length - 1] as number;
  const x = (t: number): number => LEFT + ((RIGHT - LEFT) * t) / xEnd;

  const rateTicks = niceTicks(Math.max(1, ...points.map((p) => p.deliveriesPerSec)));
  const rateEnd = rateTicks[rateTicks.length - 1] as number;
  const yRate = (v: number): number => TOP_PANEL.y1 - ((TOP_PANEL.y1 - TOP_PANEL.y0) * v) / rateEnd;

  const lat = points.filter((p) => p.p50Ms > 0);
  const latTicks = logTicks(Math.min(1, ...lat.map((p) => p.p50Ms)), Math.max(10, ...lat.map((p) => p.p99Ms)));
  const lLo = Math.log10(latTicks[0] as number);
  const lHi = Math.log10(latTicks[latTicks.length - 1] as number);
  const yLat = (v: number): number => LOW_PANEL.y1 - ((LOW_PANEL.y1 - LOW_PANEL.y0) * (Math.log10(Math.max(v, 10 ** lLo)) - lLo)) / (lHi - lLo);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  const [head, ...rest] = title.split('\n');
  out.push(`<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${esc(head ?? '')}</text>`);
  if (rest.length > 0) out.push(`<text x="${LEFT}" y="42" font-size="11" fill="#333">${esc(rest.join(' '))}</text>`);
  out.push(`<text x="${LEFT}" y="${TOP_PANEL.y0 - 12}">deliveries per second</text>`);
  out.push(`<text x="${LEFT}" y="${LOW_PANEL.y0 - 12}">latency, ms (log scale): <tspan fill="#1f77b4">p50</tspan>  <tspan fill="#d62728">p99</tspan></text>`);

  const grid = (y: number, label: string): void => {
    out.push(`<line x1="${LEFT}" x2="${RIGHT}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${LEFT - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end">${esc(label)}</text>`);
  };
  for (const v of rateTicks) grid(yRate(v), shortNumber(v));
  for (const v of latTicks) grid(yLat(v), shortNumber(v));
  for (const t of xTicks) {
    out.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="${LOW_PANEL.y1}" y2="${LOW_PANEL.y1 + 5}" stroke="#555"/>`);
    out.push(`<text x="${x(t).toFixed(1)}" y="${LOW_PANEL.y1 + 20}" text-anchor="middle">${shortNumber(t)}</text>`);
  }
  out.push(`<text x="${(LEFT + RIGHT) / 2}" y="${H - 12}" text-anchor="middle">seconds</text>`);

  const segs = segments(points);
  for (const seg of segs) {
    const start = x((seg[0] as TimelinePoint).t);
    out.push(`<line x1="${start.toFixed(1)}" x2="${start.toFixed(1)}" y1="${TOP_PANEL.y0}" y2="${LOW_PANEL.y1}" stroke="#bbbbbb" stroke-dasharray="3,3"/>`);
    out.push(`<text transform="translate(${(start + 4).toFixed(1)},${TOP_PANEL.y0 + 4}) rotate(90)" font-size="10" fill="#555">${esc((seg[0] as TimelinePoint).step)}</text>`);
    const line = (ys: (p: TimelinePoint) => number | null, color: string): void => {
      const pts = seg.map((p) => [x(p.t), ys(p)] as const).filter((q): q is readonly [number, number] => q[1] !== null);
      if (pts.length > 0) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`);
    };
    line((p) => yRate(p.deliveriesPerSec), '#2ca02c');
    line((p) => (p.p50Ms > 0 ? yLat(p.p50Ms) : null), '#1f77b4');
    line((p) => (p.p99Ms > 0 ? yLat(p.p99Ms) : null), '#d62728');
  }
  for (const panel of [TOP_PANEL, LOW_PANEL]) out.push(`<rect x="${LEFT}" y="${panel.y0}" width="${RIGHT - LEFT}" height="${panel.y1 - panel.y0}" fill="none" stroke="#555"/>`);
  out.push('</svg>');
  return out.join('\n');
}

/** The chart as PNG bytes. */
export function timelinePng(title: string, points: readonly TimelinePoint[]): Buffer {
  const svg = timelineSvg(title, points);
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: '#ffffff' }).render().asPng();
}
