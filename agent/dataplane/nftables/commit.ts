// Hands one script to `nft -f` as one transaction — and only a whole one. nft reads its input to
// the end and commits whatever parses: if the agent dies while the script is still streaming in
// (either runner pipes it), a script cut right after `delete table inet fencer` or inside a chain's
// rules would parse, and the kernel would commit that prefix: no table, or a chain without its
// final drop — open where it should be closed. So the script ends with a marker line, and awk
// passes the input on to nft one line behind: when the input ends without the marker, the last
// line nft receives is one it cannot parse, and nft, which commits only after parsing its whole
// input, commits nothing. Streaming, so nothing holds the script (no temporary file either: the
// agent's /tmp is a small memory volume). The shell that held it whole first (`$(cat)`) added
// 30–170 ms to a 2.9 MB script.
import type { KernelRunner } from '../linux/runner.ts';

export const END_MARK = '# fencer: end of transaction';

export const INCOMPLETE = 'fencer: the nft script arrived incomplete; nothing was applied';

/** Every line but the marker goes on to nft; a missing marker becomes a line nft refuses (INCOMPLETE is not nft syntax). */
const WHOLE_ONLY = 'awk -v m="$1" -v cut="$2" \'NR > 1 { print prev } { prev = $0 } END { if (prev != m) print cut }\' | nft -f -';

/** Commits `script` in one `nft -f` transaction; throws (and the kernel keeps its state) when it fails. */
export async function commitScript(runner: KernelRunner, script: string): Promise<void> {
  const r = await runner.run('sh', ['-c', WHOLE_ONLY, 'sh', END_MARK, INCOMPLETE], `${script}${END_MARK}\n`);
  if (r.exitCode !== 0) throw new Error(`nft -f failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(0, 3).join(' / ') || 'no output'}`);
}

/** The command a runner is given, for tests that feed it a cut script themselves. */
export function commitCommand(): [string, string[]] {
  return ['sh', ['-c', WHOLE_ONLY, 'sh', END_MARK, INCOMPLETE]];
}
