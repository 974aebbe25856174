// The Prometheus text exposition format, as etcd and kube-apiserver serve it on /metrics: samples
// with their labels, and sums over the series that match a filter.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export type LabelFilter = Record<string, string | string[] | ((value: string) => boolean)>;

/** Every sample of a /metrics body (comments and blank lines skipped). */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseLine(line: string): Sample | undefined {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  if (brace < 0 || (space >= 0 && space < brace)) {
    const [name, value] = line.split(/\s+/);
    return { name, labels: {}, value: parseValue(value) };
  }
  const name = line.slice(0, brace);
  const labels: Record<string, string> = {};
  let i = brace + 1;
  while (i < line.length && line[i] !== '}') {
    const eq = line.indexOf('=', i);
    const key = line.slice(i, eq).trim();
    let j = eq + 2; // past ="
    let value = '';
    while (j < line.length && line[j] !== '"') {
      if (line[j] === '\\') {
        const next = line[j + 1];
        value += next === 'n' ? '\n' : next;
        j += 2;
      } else value += line[j++];
    }
    labels[key] = value;
    i = j + 1;
    if (line[i] === ',') i++;
  }
  const rest = line.slice(i + 1).trim().split(/\s+/);
  return { name, labels, value: parseValue(rest[0]) };
}

function parseValue(text: string | undefined): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

function matches(labels: Record<string, string>, filter: LabelFilter): boolean {
  return Object.entries(filter).every(([key, want]) => {
    const have = labels[key] ?? '';
    if (typeof want === 'function') return want(have);
    return Array.isArray(want) ? want.includes(have) : want === have;
  });
}

/** The sum of every series named `name` whose labels match `filter` (0 when none does). */
export function total(samples: Sample[], name: string, filter: LabelFilter = {}): number {
  let sum = 0;
  for (const s of samples) if (s.name === name && matches(s.labels, filter)) sum += s.value;
  return sum;
}

/** Sums of `name` grouped by one label. */
export function byLabel(samples: Sample[], name: string, label: string, filter: LabelFilter = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of samples) if (s.name === name && matches(s.labels, filter)) out[s.labels[label] ?? ''] = (out[s.labels[label] ?? ''] ?? 0) + s.value;
  return out;
}
