// prom-client's metric classes without the rest of the package. Its index also loads the
// Pushgateway, default process metrics (with @opentelemetry/api) and the cluster aggregator, none of
// which Fencer uses: ~2.5 MiB resident on every node (decisions.md 15). These are the very modules
// the index exports (test/unit/prom.test.ts holds them to it), so they mix with `from 'prom-client'`.
import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';

const require = createRequire(import.meta.url);

export const Registry: typeof PromClient.Registry = require('prom-client/lib/registry');
export const Counter: typeof PromClient.Counter = require('prom-client/lib/counter');
export const Gauge: typeof PromClient.Gauge = require('prom-client/lib/gauge');
export const Histogram: typeof PromClient.Histogram = require('prom-client/lib/histogram');
export const Summary: typeof PromClient.Summary = require('prom-client/lib/summary');
export type Registry = PromClient.Registry;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type Histogram<T extends string = string> = PromClient.Histogram<T>;
export type Summary<T extends string = string> = PromClient.Summary<T>;
