// How busy the machine was during a phase (all processes, /proc/stat) and how late this process's
// event loop ran: other work on the machine (another test run) shows up as busy cores that none of
// apiserver, etcd and the bench account for.
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const USER_HZ = 100;

/** CPU seconds the whole machine spent busy so far (every core, all processes). */
export function hostBusySeconds(stat = readFileSync('/proc/stat', 'utf8')): number {
  const fields = stat.split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return (user + nice + system + irq + softirq + (steal ?? 0)) / USER_HZ;
}

export interface LoadWatch {
  /** Busy cores of the whole machine, and the event loop's delay (p99 and max, ms), since start. */
  stop(): { hostBusyCores: number; loopDelayP99Ms: number; loopDelayMaxMs: number };
}

export function watchLoad(): LoadWatch {
  const started = performance.now();
  const busy0 = hostBusySeconds();
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  return {
    stop() {
      delay.disable();
      const seconds = (performance.now() - started) / 1000;
      return { hostBusyCores: (hostBusySeconds() - busy0) / seconds, loopDelayP99Ms: delay.percentile(99) / 1e6, loopDelayMaxMs: delay.max / 1e6 };
    },
  };
}
