// A minimal SVG line chart (log-scaled x), so the report can show time against size without a plotting dependency.
export interface Series { name: string; points: Array<{ x: number; y: number }> }

export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[]): string {
  const W = 560, H = 320, L = 60, R = 150, T = 30, B = 45;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const [x0, x1] = [Math.log10(Math.min(...xs)), Math.log10(Math.max(...xs))];
  const yMax = Math.max(...ys) * 1.1 || 1;
  const px = (x: number) => L + ((Math.log10(x) - x0) / (x1 - x0 || 1)) * (W - L - R);
  const py = (y: number) => H - B - (y / yMax) * (H - T - B);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const lines = series.map((s, i) => {
    const pts = s.points.map((p) => `${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join(' ');
    const dots = s.points.map((p) => `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="3" fill="${colors[i % 4]}"/>`).join('');
    return `<polyline fill="none" stroke="${colors[i % 4]}" stroke-width="2" points="${pts}"/>${dots}<text x="${W - R + 10}" y="${T + 18 * i}" fill="${colors[i % 4]}" font-size="12">${escape(s.name)}</text>`;
  });
  const xTicks = [...new Set(xs)].map((x) => `<text x="${px(x).toFixed(1)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${x}</text>`);
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => `<text x="${L - 6}" y="${py(f * yMax).toFixed(1)}" font-size="11" text-anchor="end">${Math.round(f * yMax)}</text><line x1="${L}" x2="${W - R}" y1="${py(f * yMax).toFixed(1)}" y2="${py(f * yMax).toFixed(1)}" stroke="#ddd"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>
<text x="${L}" y="18" font-size="14">${escape(title)}</text>${yTicks.join('')}${xTicks.join('')}
<text x="${(L + W - R) / 2}" y="${H - 8}" font-size="12" text-anchor="middle">${escape(xLabel)}</text>
<text x="14" y="${(T + H - B) / 2}" font-size="12" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">${escape(yLabel)}</text>
${lines.join('\n')}</svg>
`;
}

function escape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
