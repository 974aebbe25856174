// Runs inside a pod netns: probes every target in parallel and prints a JSON array of booleans.
// TCP: the connect completes within the timeout. UDP: a datagram is echoed back within the timeout.
// Usage: node probe.ts '{"timeoutMs":800,"targets":[{"ip":"10.244.1.2","protocol":"TCP","port":80}]}'
import net from 'node:net';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';

interface Target { ip: string; protocol: 'TCP' | 'UDP'; port: number }
const { timeoutMs, targets } = JSON.parse(process.argv[2] ?? '{}') as { timeoutMs: number; targets: Target[] };

function probeTcp(t: Target): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: t.ip, port: t.port });
    const done = (ok: boolean): void => { clearTimeout(timer); sock.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

function probeUdp(t: Target): Promise<boolean> {
  return new Promise((resolve) => {
    const payload = randomBytes(16);
    const sock = dgram.createSocket('udp4');
    // A connected socket surfaces ICMP port-unreachable as an error instead of a silent timeout.
    const done = (ok: boolean): void => { clearTimeout(timer); try { sock.close(); } catch { /* closed */ } resolve(ok); };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('message', (msg) => { if (msg.equals(payload)) done(true); });
    sock.on('error', () => done(false));
    sock.connect(t.port, t.ip, () => sock.send(payload));
  });
}

const results = await Promise.all(targets.map((t) => (t.protocol === 'TCP' ? probeTcp(t) : probeUdp(t))));
process.stdout.write(`${JSON.stringify(results)}\n`, () => process.exit(0));
