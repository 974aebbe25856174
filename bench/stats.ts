// Median/min/max of repeated measurements after a warm-up: every figure in a report is one of these.
export interface Stat { median: number; min: number; max: number; runs: number }

export function stat(samples: number[]): Stat {
  const s = [...samples].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)], min: s[0], max: s[s.length - 1], runs: s.length };
}

export function measure(fn: () => void, runs: number, warmup = 1): Stat {
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    fn();
    samples.push(performance.now() - t);
  }
  return stat(samples);
}

export function fmt(s: Stat, digits = 1): string {
  return `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;
}
