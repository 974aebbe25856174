// The nft -i session's protocol against stand-in nft programs on PATH (the real nft is driven in
// test/integration/nft-session.test.ts): answers, refusals, silence, a prompt printed unasked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftSession } from '../../agent/dataplane/nftables/session.ts';

const ANSWER = 'payload expression, datatype inet_service (internet network service) (basetype integer), 16 bits';

/** A session whose `nft` is `body` (a sh script reading its commands on stdin); each start is logged. */
function fakeNft(body: string): { session: NftSession; starts: () => number; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fencer-fake-nft-'));
  writeFileSync(join(dir, 'nft'), `#!/bin/sh\necho start >> '${dir}/starts'\n${body}\n`);
  chmodSync(join(dir, 'nft'), 0o755);
  const session = new NftSession(['env', `PATH=${dir}:${process.env.PATH}`], { timeoutMs: 300 });
  return { session, dir, starts: () => { try { return readFileSync(join(dir, 'starts'), 'utf8').split('\n').filter(Boolean).length; } catch { return 0; } } };
}

const WELL_BEHAVED = `while read -r line; do
  case "$line" in
    "describe tcp dport") echo '${ANSWER}' ;;
    delete*) echo "Error: Could not process rule: No such file or directory" >&2; echo "$line" >&2 ;;
    *) ;;
  esac
done`;

test('a change nft accepts resolves, one it refuses rejects with its message, all through one process', async () => {
  const { session, starts, dir } = fakeNft(WELL_BEHAVED);
  try {
    await session.commit('add element inet fencer p-1 { 10.0.0.1 }');
    await assert.rejects(session.commit('delete element inet fencer p-1 { 10.0.0.9 }'), /nft refused the change: Error: Could not process rule/);
    await session.commit('add element inet fencer p-1 { 10.0.0.2 }');
    assert.equal(starts(), 1);
    await assert.rejects(session.commit('add element inet fencer p-1 { 10.0.0.3 }\nflush ruleset'), /one line/);
  } finally {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an nft that stops answering is ended after the time-out; the next change starts a new one', async () => {
  const { session, starts, dir } = fakeNft(`read -r first; echo '${ANSWER}'; read -r line; exec sleep 30`);
  try {
    await assert.rejects(session.commit('add element inet fencer p-1 { 10.0.0.1 }'), /no answer in 300 ms/);
    await assert.rejects(session.commit('add element inet fencer p-1 { 10.0.0.1 }'), /no answer in 300 ms/);
    assert.equal(starts(), 2);
  } finally {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an nft that prints a prompt unasked is never used: its answers could not be told from errors', async () => {
  const { session, starts, dir } = fakeNft(`printf 'nft> '\n${WELL_BEHAVED}`);
  try {
    await assert.rejects(session.commit('add element inet fencer p-1 { 10.0.0.1 }'), /prints "nft>" unasked/);
    await assert.rejects(session.commit('add element inet fencer p-1 { 10.0.0.1 }'), /unasked/);
    assert.equal(starts(), 1, 'not started again');
  } finally {
    await session.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
