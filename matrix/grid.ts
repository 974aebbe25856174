// Reachability grids: parsing the expected text, formatting the observed one, and a side-by-side
// comparison that marks each differing cell.
export type Grid = Map<string, Map<string, boolean>>; // source → destination → allowed

export function parseGrid(text: string, pods: string[], onError: (reason: string) => never): Grid {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) onError('the grid is empty');
  const header = lines[0].split(/\s+/).slice(1);
  const grid: Grid = new Map();
  for (const line of lines.slice(1)) {
    const [src, ...cells] = line.split(/\s+/);
    if (cells.length !== header.length) onError(`row ${src} has ${cells.length} cells for ${header.length} columns`);
    if (grid.has(src)) onError(`row ${src} appears twice`);
    const row = new Map<string, boolean>();
    cells.forEach((c, i) => {
      if (c !== '.' && c !== 'X') onError(`row ${src}, column ${header[i]}: "${c}" is neither . nor X`);
      row.set(header[i], c === '.');
    });
    grid.set(src, row);
  }
  const cover = (names: string[], what: string) => {
    const missing = pods.filter((p) => !names.includes(p));
    const extra = names.filter((n) => !pods.includes(n));
    if (missing.length) onError(`${what} missing for ${missing.join(', ')}`);
    if (extra.length) onError(`${what} for pods that do not exist at this step: ${extra.join(', ')}`);
    if (new Set(names).size !== names.length) onError(`a ${what.replace(/s$/, '')} appears twice`);
  };
  cover(header, 'columns');
  cover([...grid.keys()], 'rows');
  return grid;
}

export function formatGrid(grid: Grid, pods: string[], mark?: (src: string, dst: string) => boolean): string[] {
  const width = Math.max(...pods.map((p) => p.length), 1) + 1;
  const pad = (s: string) => s.padEnd(width);
  const lines = [pad('-') + pods.map(pad).join('').trimEnd()];
  for (const src of pods) {
    const cells = pods.map((dst) => {
      const c = grid.get(src)!.get(dst) ? '.' : 'X';
      return pad(mark?.(src, dst) ? `${c}*` : c);
    });
    lines.push((pad(src) + cells.join('')).trimEnd());
  }
  return lines;
}

/** Cells where the grids differ; the diagonal is never probed and always counts as allowed. */
export function differences(expected: Grid, observed: Grid, pods: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const src of pods) for (const dst of pods) {
    if (src === dst) continue;
    if (expected.get(src)!.get(dst) !== observed.get(src)!.get(dst)) out.push([src, dst]);
  }
  return out;
}

export function sideBySide(expected: Grid, observed: Grid, pods: string[], diffs: Array<[string, string]>): string {
  const isDiff = (s: string, d: string) => diffs.some(([a, b]) => a === s && b === d);
  const left = formatGrid(expected, pods);
  const right = formatGrid(observed, pods, isDiff);
  const width = Math.max(...left.map((l) => l.length), 'expected'.length) + 4;
  return [`${'expected'.padEnd(width)}observed (* marks a difference)`, ...left.map((l, i) => `${l.padEnd(width)}${right[i]}`)].join('\n');
}
