// A small SVG line chart, drawn by the project: axes with ticks, one polyline per series with markers, a legend.
// Each series is a <g class="series" data-series="NAME"> so tests (and readers) can find it.
export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Plot y on a log scale (perplexity). */
  logY?: boolean;
  width?: number;
  height?: number;
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

export function lineChart(series: Series[], o: ChartOptions): string {
  const W = o.width ?? 800;
  const H = o.height ?? 420;
  const m = { left: 64, right: 260, top: 36, bottom: 48 };
  const pts = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logY || p.y > 0));
  const xs = pts.map((p) => p.x);
  const ys = pts.map((p) => (o.logY ? Math.log10(p.y) : p.y));
  const [x0, x1] = padRange(Math.min(...xs, 0), Math.max(...xs, 1));
  const [y0, y1] = padRange(Math.min(...ys), Math.max(...ys));
  const px = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (W - m.left - m.right);
  const py = (y: number) => H - m.bottom - (((o.logY ? Math.log10(y) : y) - y0) / (y1 - y0)) * (H - m.top - m.bottom);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  out.push(`<title>${esc(o.title)}</title>`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(o.title)}</text>`);
  // axes and ticks
  const bottom = H - m.bottom;
  const right = W - m.right;
  out.push(`<line x1="${m.left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="black"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${bottom}" stroke="black"/>`);
  for (const t of ticks(x0, x1)) {
    out.push(`<line x1="${px(t)}" y1="${bottom}" x2="${px(t)}" y2="${bottom + 4}" stroke="black"/>`);
    out.push(`<text x="${px(t)}" y="${bottom + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    const value = o.logY ? 10 ** t : t;
    const y = H - m.bottom - ((t - y0) / (y1 - y0)) * (H - m.top - m.bottom);
    out.push(`<line x1="${m.left - 4}" y1="${y}" x2="${right}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 6}" y="${y + 4}" text-anchor="end">${fmt(value)}</text>`);
  }
  out.push(`<text x="${(m.left + right) / 2}" y="${H - 10}" text-anchor="middle">${esc(o.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${(m.top + bottom) / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}${o.logY ? " (log)" : ""}</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const ok = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logY || p.y > 0)).sort((a, b) => a.x - b.x);
    out.push(`<g class="series" data-series="${esc(s.name)}">`);
    if (ok.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${ok.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(" ")}"/>`);
    }
    for (const p of ok) out.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
    const ly = m.top + 14 * i;
    out.push(`<line x1="${right + 12}" y1="${ly}" x2="${right + 30}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${right + 34}" y="${ly + 4}">${esc(s.name)}</text>`);
    out.push(`</g>`);
  });
  out.push(`</svg>`);
  return out.join("\n");
}

function padRange(lo: number, hi: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

function ticks(lo: number, hi: number): number[] {
  const step = niceStep((hi - lo) / 5);
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-12; t += step) out.push(Math.round(t / step) * step);
  return out;
}

function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? String(Math.round(v * 100) / 100) : String(Math.round(v * 1000) / 1000));
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
