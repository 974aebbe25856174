// Runs inside a pod's network namespace: starts an attempt to every target every `everyMs` (TCP:
// the connect completes; UDP: a datagram is echoed back), each with its own timeout, and prints
// "<target index> <wall-clock start ms> <1|0>" per attempt as it ends. Attempts overlap, so a verdict
// change is seen within `everyMs` of happening, not one timeout later. Driven by continuous-loop.ts.
// Usage: node flow-prober.ts '{"everyMs":50,"timeoutMs":1000,"targets":[{"ip":"10.244.1.2","protocol":"TCP","port":80}]}'
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

interface Target { ip: string; protocol: 'TCP' | 'UDP'; port: number }
const { everyMs, timeoutMs, targets } = JSON.parse(process.argv[2] ?? '{}') as { everyMs: number; timeoutMs: number; targets: Target[] };
const wallNow = (): number => performance.timeOrigin + performance.now();

function attempt(index: number, t: Target): void {
  const started = wallNow();
  let finished = false;
  let cleanup = (): void => undefined;
  const done = (ok: boolean): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    cleanup();
    process.stdout.write(`${index} ${started.toFixed(1)} ${ok ? 1 : 0}\n`);
  };
  const timer = setTimeout(() => done(false), timeoutMs);
  if (t.protocol === 'TCP') {
    const sock = net.connect({ host: t.ip, port: t.port });
    cleanup = () => sock.destroy();
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    return;
  }
  const payload = randomBytes(16);
  const sock = dgram.createSocket('udp4');
  cleanup = () => {
    try { sock.close(); } catch { /* closed */ }
  };
  sock.on('message', (msg) => { if (msg.equals(payload)) done(true); });
  // A connected socket surfaces ICMP port-unreachable as an error instead of a silent timeout.
  sock.on('error', () => done(false));
  sock.connect(t.port, t.ip, () => sock.send(payload));
}

// Spread the targets over the period so one source does not burst.
targets.forEach((t, i) => setTimeout(() => setInterval(() => attempt(i, t), everyMs), Math.floor((everyMs * i) / targets.length)));
process.on('SIGTERM', () => process.exit(0));
