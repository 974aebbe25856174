// Hands one script to `nft -f` as one transaction — and only a whole one. nft reads its input to
// the end and commits whatever parses: if the agent dies while the script is still streaming in
// (either runner pipes it), a script cut right after `delete table inet fencer` or inside a chain's
// rules would parse, and the kernel would commit that prefix: no table, or a chain without its
// final drop — open where it should be closed. So the script ends with a marker line, and a shell
// reads the input to its end and runs nft only if the marker is there; a cut script changes nothing.
// The shell holds the script in memory (no temporary file: the agent's /tmp is a small memory
// volume); for a 1.6 MB script that cost nothing measurable next to nft's own 0.3 s.
import type { KernelRunner } from '../linux/runner.ts';

export const END_MARK = '# fencer: end of transaction';

export const INCOMPLETE = 'fencer: the nft script arrived incomplete; nothing was applied';

/** $(cat) drops the trailing newline, so the marker ends the text; it is put back for nft. */
const WHOLE_ONLY = 's=$(cat); case "$s" in *"$1") printf "%s\\n" "$s" | exec nft -f - ;; *) echo "$2" >&2; exit 3 ;; esac';

/** Commits `script` in one `nft -f` transaction; throws (and the kernel keeps its state) when it fails. */
export async function commitScript(runner: KernelRunner, script: string): Promise<void> {
  const r = await runner.run('sh', ['-c', WHOLE_ONLY, 'sh', END_MARK, INCOMPLETE], `${script}${END_MARK}\n`);
  if (r.exitCode !== 0) throw new Error(`nft -f failed (exit ${r.exitCode}): ${r.stderr.trim().split('\n').slice(0, 3).join(' / ') || 'no output'}`);
}

/** The command a runner is given, for tests that feed it a cut script themselves. */
export function commitCommand(): [string, string[]] {
  return ['sh', ['-c', WHOLE_ONLY, 'sh', END_MARK, INCOMPLETE]];
}
