// docs/reliability.md cannot go stale: it must be exactly the rendering of docs/reliability.json, which
// the fault tests rewrite on every run, and every fault the report promises must have a row written
// by a test file that exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EXPECTED_ROWS, MD_PATH, readRows, renderReport, withLock } from '../faults/report.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

test('docs/reliability.md is the rendering of docs/reliability.json', () => {
  // Under the writers' lock: other test files may be recording rows right now.
  const [md, rendered] = withLock(() => [readFileSync(MD_PATH, 'utf8'), renderReport(readRows())]);
  assert.equal(md, rendered, 'regenerate with `node test/faults/report.ts` (or run the fault tests)');
});

test('every fault and hostile input has a row, written by a test that exists', () => {
  const rows = withLock(readRows);
  assert.deepEqual(EXPECTED_ROWS.filter((id) => !rows.some((r) => r.id === id)), []);
  for (const r of rows) {
    assert.ok(existsSync(`${root}${r.test}`), `${r.id}: ${r.test} does not exist`);
    assert.match(r.measured, /^\d{4}-\d{2}-\d{2}$/);
    if (r.probes) assert.ok(r.probes.failed <= r.probes.sent);
  }
});
