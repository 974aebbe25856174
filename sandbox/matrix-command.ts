// `fencer sandbox matrix`: the live connectivity matrix of a running sandbox, probed now.
import { formatGrid, type Grid } from '../matrix/grid.ts';
import { probeFrom, readState, alive } from './state.ts';

export async function sandboxMatrix(protocol: 'TCP' | 'UDP', port: number): Promise<number> {
  const state = readState();
  if (!state || !alive(state.pid)) {
    console.error('no sandbox is running (start one with `npm run sandbox`)');
    return 2;
  }
  const grid: Grid = new Map(await Promise.all(state.pods.map(async (src) => {
    const others = state.pods.filter((d) => d !== src);
    const results = await probeFrom(src.netns, others.map((d) => ({ ip: d.ip, protocol, port })));
    const row = new Map<string, boolean>([[src.key, true]]);
    others.forEach((d, i) => row.set(d.key, results[i]));
    return [src.key, row] as const;
  })));
  console.log(`${protocol}/${port} (rows: from, columns: to; . connects, X blocked):`);
  for (const line of formatGrid(grid, state.pods.map((p) => p.key))) console.log(`  ${line}`);
  return 0;
}
