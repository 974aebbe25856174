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
    await runner.close();
  }
});

test('concurrent calls run one at a time and each gets its own answer', async () => {
  const runner = new ShellRunner();
  try {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => runner.run('sh', ['-c', `sleep 0.00${i % 3}; echo ${i}; echo e${i} >&2; exit ${i % 4}`])));
    results.forEach((r, i) => assert.deepEqual(r, { stdout: `${i}\n`, stderr: `e${i}\n`, exitCode: i % 4 }));
  } finally {
    await runner.close();
  }
});

test('a shell that dies fails the call in flight, and the next call starts a new one', async () => {
  const runner = new ShellRunner();
  try {
    await assert.rejects(runner.run('sh', ['-c', 'kill -9 $PPID']), /the shell running kernel tools ended/);
    assert.deepEqual(await runner.run('echo', ['again']), { stdout: 'again\n', stderr: '', exitCode: 0 });
  } finally {
    await runner.close();
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
    await runner.close();
  }
});

test('input a tool leaves unread never reaches the next call', async () => {
  const runner = new ShellRunner();
  try {
    // A tool failing before it reads (ipset on an existing set, iptables-restore on a bad line).
    const payload = 'add FENCER-p-0123456789abcdef 10.0.0.1\n'.repeat(20_000);
    for (let i = 0; i < 3; i++) {
      assert.equal((await runner.run('sh', ['-c', 'exit 1'], payload)).exitCode, 1);
      assert.equal((await runner.run('cat', [], `mine ${i}\n`)).stdout, `mine ${i}\n`);
    }
  } finally {
    await runner.close();
  }
});

test('an input that cannot be read fails the call even when the tool says 0', async () => {
  // A prefix that closes the input pipe, as sudo does with inherited descriptors.
  const runner = new ShellRunner(['sh', '-c', 'exec 3<&-; exec "$@"', 'prefix']);
  try {
    const r = await runner.run('cat', [], 'lost\n');
    assert.equal(r.exitCode, 125);
    assert.match(r.stderr, /input could not be read/);
    assert.equal((await runner.run('echo', ['no input, no problem'])).exitCode, 0);
  } finally {
    await runner.close();
  }
});

test("a lost shell's tools end with it, and its late output reaches no other call", async () => {
  const runner = new ShellRunner();
  try {
    await assert.rejects(runner.run('sh', ['-c', '(sleep 0.3; echo LATE; echo LATE >&2) & kill -9 $PPID']), /ended/);
    assert.deepEqual(await runner.run('echo', ['mine']), { stdout: 'mine\n', stderr: '', exitCode: 0 });
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await runner.run('echo', ['still mine']), { stdout: 'still mine\n', stderr: '', exitCode: 0 });
  } finally {
    await runner.close();
  }
});

test('close lets calls already made finish and refuses later ones', async () => {
  const runner = new ShellRunner();
  const made = runner.run('sh', ['-c', 'sleep 0.1; echo done']);
  const closing = runner.close();
  await assert.rejects(runner.run('echo', ['late']), /closed/);
  assert.equal((await made).stdout, 'done\n');
  await closing;
});

test('a shell that cannot start fails the call with what its prefix said', async () => {
  const runner = new ShellRunner(['sh', '-c', 'echo "Cannot open network namespace" >&2; exit 1', 'prefix']);
  await assert.rejects(runner.run('true', []), /the shell running kernel tools ended \(exit 1\): Cannot open network namespace/);
  await runner.close();
});

test('an idle shell does not keep the process alive', async () => {
  const script = `import { ShellRunner } from ${JSON.stringify(new URL('../../agent/dataplane/linux/shell-runner.ts', import.meta.url).href)};
const r = new ShellRunner(); console.log((await r.run('echo', ['done'])).stdout.trim());`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(child.signal, null, 'the process had to be killed: the idle shell held it');
  assert.equal(child.stdout.trim(), 'done', child.stderr);
  assert.equal(child.status, 0);
});
