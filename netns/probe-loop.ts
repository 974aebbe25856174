// Runs inside a pod netns: starts a TCP connection attempt to one target every `everyMs`, each with
// its own timeout, and prints "<wall-clock start ms> <1|0>" per attempt as it ends. Attempts overlap,
// so a verdict change is seen within `everyMs` of happening instead of one timeout later.
// Usage: node probe-loop.ts '{"ip":"10.244.1.2","port":80,"everyMs":10,"timeoutMs":200}'
import net from 'node:net';

const { ip, port, everyMs, timeoutMs } = JSON.parse(process.argv[2] ?? '{}') as { ip: string; port: number; everyMs: number; timeoutMs: number };
const wallNow = (): number => performance.timeOrigin + performance.now();

function attempt(): void {
  const started = wallNow();
  const sock = net.connect({ host: ip, port });
  let finished = false;
  const done = (ok: boolean): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    sock.destroy();
    process.stdout.write(`${started.toFixed(1)} ${ok ? 1 : 0}\n`);
  };
  const timer = setTimeout(() => done(false), timeoutMs);
  sock.once('connect', () => done(true));
  sock.once('error', () => done(false));
}

setInterval(attempt, everyMs);
process.on('SIGTERM', () => process.exit(0));
