import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as promClient from 'prom-client';
import * as prom from '../../runtime/prom.ts';

test('runtime/prom.ts exports the very classes prom-client exports', () => {
  for (const name of ['Registry', 'Counter', 'Gauge', 'Histogram', 'Summary'] as const) assert.equal(prom[name], promClient[name], name);
});
