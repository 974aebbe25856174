// Runs inside a pod netns: accepts TCP connections (echoing data) on every --tcp port and echoes UDP
// datagrams on every --udp port. Prints "ready" once all sockets listen; exits when stdin closes (its
// parent died) or on SIGTERM.
// Usage: node serve.ts '{"tcp":[80,81],"udp":[53]}'
import net from 'node:net';
import dgram from 'node:dgram';

const spec = JSON.parse(process.argv[2] ?? '{}') as { tcp?: number[]; udp?: number[] };

function listenTcp(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = net.createServer((sock) => {
      sock.on('error', () => sock.destroy());
      sock.pipe(sock);
    });
    server.once('error', reject);
    server.listen({ port, host: '0.0.0.0' }, () => resolve());
  });
}

function listenUdp(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('message', (msg, from) => sock.send(msg, from.port, from.address));
    sock.once('error', reject);
    sock.bind(port, '0.0.0.0', () => {
      sock.off('error', reject);
      sock.on('error', () => { /* e.g. ICMP errors for a vanished peer */ });
      resolve();
    });
  });
}

try {
  await Promise.all([...(spec.tcp ?? []).map(listenTcp), ...(spec.udp ?? []).map(listenUdp)]);
} catch (err) {
  process.stderr.write(`serve: ${(err as Error).message}\n`);
  process.exit(1);
}
process.stdout.write('ready\n');
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => process.exit(0));
