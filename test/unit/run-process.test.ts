// runProcess: input reaches the program, output and exit code come back, and a program that cannot
// start, is killed, or overruns its time is a failed result, never a rejection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runProcess } from '../../runtime/run-process.ts';

test('input in, output and exit code out, environment extended', async () => {
  const r = await runProcess('sh', ['-c', 'cat; echo "$FENCER_X" >&2; exit 3'], { input: 'hello\n', env: { FENCER_X: 'x1' } });
  assert.deepEqual(r, { stdout: 'hello\n', stderr: 'x1\n', exitCode: 3 });
  assert.ok((await runProcess('sh', ['-c', 'echo "$PATH"'], { env: { FENCER_X: 'x' } })).stdout.trim().length > 0, 'PATH kept');
});

test('a missing program is a failed result naming the cause', async () => {
  const r = await runProcess('/nonexistent/fencer-tool', []);
  assert.notEqual(r.exitCode, 0);
  assert.match(r.stderr, /ENOENT/);
});

test('a program that overruns its time is killed and says so', async () => {
  const started = performance.now();
  const r = await runProcess('sleep', ['5'], { timeoutMs: 100 });
  assert.ok(performance.now() - started < 3000);
  assert.notEqual(r.exitCode, 0);
  assert.match(r.stderr, /timed out after 100 ms/);
});

test('a program that ignores its input does not break the run', async () => {
  const r = await runProcess('true', [], { input: 'x'.repeat(1 << 20) });
  assert.equal(r.exitCode, 0);
});
