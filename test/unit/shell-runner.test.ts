import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ShellRunner } from '../../agent/dataplane/linux/shell-runner.ts';

test('the shell runner gives each call its own stdout, stderr, exit code and input, exactly', async () => {
  const runner = new ShellRunner();
  try {
    assert.deepEqual(await runner.run('printf', ['%s', 'no newline']), { stdout: 'no newline', stderr: '', exitCode: 0 });
    assert.deepEqual(await runner.run('printf', ['a\\n\\nb\\n\\n']), { stdout: 'a\n\nb\n\n', stderr: '', exitCode: 0 });
    assert.deepEqual(await runner.run('sh', ['-c', 'echo out; echo err >&2; exit 3']), { stdout: 'out\n', stderr: 'err\n', exitCode: 3 });
    // Input through a file; words with quotes, spaces and shell syntax reach the tool as they are.
    const big = Array.from({ length: 50_000 }, (_, i) => `add FENCER-p-0123456789abcdef 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`).join('\n') + '\n';
    assert.equal((await runner.run('cat', [], big)).stdout, big);
    assert.equal((await runner.run('printf', ['%s|', "it's", 'a b', '$(id)', '`id`', ';', '"q"'])).stdout, "it's|a b|$(id)|`id`|;|\"q\"|");
    assert.equal((await runner.run('cat', [])).stdout, '', 'no input: an empty stdin, not the command channel');
    // A missing tool fails like any other: exit 127 and the shell's message.
    const missing = await runner.run('fencer-no-such-tool', []);
    assert.equal(missing.exitCode, 127);
    assert.match(missing.stderr, /not found/);
  } finally {
    runner.close();
  }
});

test('concurrent calls run one at a time and each gets its own answer', async () => {
  const runner = new ShellRunner();
  try {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runner.run('sh', ['-c', `sleep 0.00${i % 3}; echo ${i}; echo e${i} >&2; exit ${i % 4}`])));
    results.forEach((r, i) => assert.deepEqual(r, { stdout: `${i}\n`, stderr: `e${i}\n`, exitCode: i % 4 }));
  } finally {
    runner.close();
  }
});

test('a shell that dies fails the call in flight, and the next call starts a new one', async () => {
  const runner = new ShellRunner();
  try {
    await assert.rejects(runner.run('sh', ['-c', 'kill -9 $PPID']), /the shell running kernel tools ended/);
    assert.deepEqual(await runner.run('echo', ['again']), { stdout: 'again\n', stderr: '', exitCode: 0 });
  } finally {
    runner.close();
  }
});

test('inputs of any size follow each other on the input pipe without running into the next call', async () => {
  const runner = new ShellRunner();
  try {
    const big = 'x'.repeat(5_000_000) + '\n';
    const [a, b, c] = await Promise.all([runner.run('wc', ['-c'], big), runner.run('cat', [], 'small\n'), runner.run('cat', [], '')]);
    assert.equal(a.stdout.trim(), String(big.length));
    assert.equal(b.stdout, 'small\n');
    assert.equal(c.stdout, '');
    // A large output arrives in many chunks; the end mark may be split across two of them.
    for (let i = 0; i < 5; i++) assert.equal((await runner.run('cat', [], big)).stdout === big, true);
    assert.equal((await runner.run('cat', [], 'é✓\n')).stdout, 'é✓\n', 'lengths count bytes, not characters');
  } finally {
    runner.close();
  }
});

test('a shell that cannot start fails the call with what its prefix said', async () => {
  const runner = new ShellRunner(['sh', '-c', 'echo "Cannot open network namespace" >&2; exit 1', 'prefix']);
  await assert.rejects(runner.run('true', []), /the shell running kernel tools ended \(exit 1\): Cannot open network namespace/);
  runner.close();
});

test('an idle shell does not keep the process alive', async () => {
  const script = `import { ShellRunner } from ${JSON.stringify(new URL('../../agent/dataplane/linux/shell-runner.ts', import.meta.url).href)};
const r = new ShellRunner(); console.log((await r.run('echo', ['done'])).stdout.trim());`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.signal, null, 'the process had to be killed: the idle shell held it');
  assert.equal(child.stdout.trim(), 'done', child.stderr);
  assert.equal(child.status, 0);
});
