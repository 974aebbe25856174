// Proves the netns harness (netns/topology.ts) is a faithful little cluster network: pods reach
// each other over TCP and UDP on the same node and across nodes, unserved ports fail, iptables FORWARD
// in a node netns sees same-node (bridged, via br_netfilter) and cross-node (routed) pod traffic, and
// nothing is left behind — not by destroy(), not by a SIGTERM'd or SIGKILL'd owner.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { Topology, type PodHandle, type ProbeTarget } from '../../netns/topology.ts';
import { NODE_BIN, listNetns } from '../../netns/ip.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (network namespaces)' : false;
const NODES = [{ name: 'n1', podCIDR: '10.244.1.0/24' }, { name: 'n2', podCIDR: '10.244.2.0/24' }];
const live: Topology[] = [];

after(async () => {
  await Promise.all(live.map((t) => t.destroy()));
});

async function create(prefix: string): Promise<Topology> {
  const t = await Topology.create({ prefix, nodes: NODES });
  live.push(t);
  return t;
}

async function netnsWithPrefix(prefix: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(`${prefix}-`));
}

const tcp = (p: PodHandle, port = 80): ProbeTarget => ({ ip: p.ip, protocol: 'TCP', port });
const udp = (p: PodHandle, port = 53): ProbeTarget => ({ ip: p.ip, protocol: 'UDP', port });

test('2 nodes x 2 pods: connectivity, unserved ports, FORWARD filtering, clean destroy', { skip }, async (t) => {
  const topo = await create('fxnt');
  try {
    const [a, b, c, d] = await Promise.all([
      topo.addPod('n1', { name: 'a', ip: '10.244.1.2', tcp: [80, 81], udp: [53] }),
      topo.addPod('n1', { name: 'b', ip: '10.244.1.3', tcp: [80, 81], udp: [53] }),
      topo.addPod('n2', { name: 'c', ip: '10.244.2.2', tcp: [80, 81], udp: [53] }),
      topo.addPod('n2', { name: 'd', ip: '10.244.2.3', tcp: [80, 81], udp: [53] }),
    ]);
    const pods = [a, b, c, d];
    assert.equal(topo.nodeNetns('n1'), 'fxnt-n1');
    assert.equal(topo.podNetns(a), a.netns);

    await t.test('every pod reaches every other pod on TCP and UDP', async () => {
      await Promise.all(pods.map(async (from) => {
        const others = pods.filter((p) => p !== from);
        const targets = others.flatMap((p) => [tcp(p), tcp(p, 81), udp(p)]);
        assert.deepEqual(await topo.probe(from, targets), targets.map(() => true), `from ${from.name}`);
      }));
    });

    await t.test('unserved ports fail fast (RST / ICMP port unreachable)', async () => {
      const start = performance.now();
      assert.deepEqual(await topo.probe(a, [tcp(b, 9999), udp(b, 9999), tcp(c, 9999), udp(c, 9999)], 3000), [false, false, false, false]);
      assert.ok(performance.now() - start < 2500, 'refusals should not wait for the timeout');
    });

    await t.test('same-node FORWARD DROP (br_netfilter) blocks A->B but not B->A', async () => {
      const rule = ['FORWARD', '-s', a.ip, '-d', b.ip, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP'];
      await topo.nodeExec('n1', ['iptables', '-I', ...rule]);
      assert.deepEqual(await topo.probe(a, [tcp(b), udp(b), tcp(c)]), [false, false, true]);
      assert.deepEqual(await topo.probe(b, [tcp(a), udp(a)]), [true, true]);
      await topo.nodeExec('n1', ['iptables', '-D', ...rule]);
      assert.deepEqual(await topo.probe(a, [tcp(b), udp(b)]), [true, true]);
    });

    await t.test('a stateless DROP also kills the reverse TCP handshake (SYN-ACK dropped)', async () => {
      const rule = ['FORWARD', '-s', a.ip, '-d', b.ip, '-j', 'DROP'];
      await topo.nodeExec('n1', ['iptables', '-I', ...rule]);
      assert.deepEqual(await topo.probe(b, [tcp(a), tcp(c)]), [false, true]);
      await topo.nodeExec('n1', ['iptables', '-D', ...rule]);
    });

    await t.test('cross-node FORWARD DROP on either node blocks A->C but not C->A', async () => {
      for (const node of ['n1', 'n2']) {
        const rule = ['FORWARD', '-s', a.ip, '-d', c.ip, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP'];
        await topo.nodeExec(node, ['iptables', '-I', ...rule]);
        assert.deepEqual(await topo.probe(a, [tcp(c), tcp(d)]), [false, true], `rule on ${node}`);
        assert.deepEqual(await topo.probe(c, [tcp(a)]), [true], `rule on ${node}`);
        await topo.nodeExec(node, ['iptables', '-D', ...rule]);
      }
      assert.deepEqual(await topo.probe(a, [tcp(c)]), [true]);
    });

    await t.test('removePod deletes its netns and stops its servers', async () => {
      await topo.removePod(d);
      assert.ok(!(await listNetns()).includes(d.netns));
      assert.deepEqual(await topo.probe(a, [tcp(d)], 300), [false]);
    });
  } finally {
    await topo.destroy();
    await topo.destroy(); // idempotent
  }
  assert.deepEqual(await netnsWithPrefix('fxnt'), []);
});

test('timings: create 2 nodes x 4 pods, one 9-target probe with DROPs', { skip }, async (t) => {
  const start = performance.now();
  const topo = await create('fxnu');
  try {
    const pods = await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map((i) => {
      const node = i < 4 ? 'n1' : 'n2';
      return topo.addPod(node, { name: `p${i}`, ip: `10.244.${i < 4 ? 1 : 2}.${10 + (i % 4)}`, tcp: [80], udp: [53] });
    }));
    const createMs = performance.now() - start;
    const [src, ...rest] = pods;
    await topo.nodeExec('n1', ['iptables', '-I', 'FORWARD', '-s', src.ip, '-d', rest[0].ip, '-j', 'DROP']);
    await topo.nodeExec('n2', ['iptables', '-I', 'FORWARD', '-s', src.ip, '-d', rest[4].ip, '-j', 'DROP']);
    const targets = [tcp(rest[0]), udp(rest[0]), tcp(rest[1]), udp(rest[1]), tcp(rest[4]), udp(rest[4]), tcp(rest[5]), udp(rest[6]), tcp(rest[3], 9999)];
    const probeStart = performance.now();
    const results = await topo.probe(src, targets, 800);
    const probeMs = performance.now() - probeStart;
    assert.deepEqual(results, [false, false, true, true, false, false, true, true, false]);
    assert.ok(probeMs < 800 + 1500, `one parallel probe call, not 9 sequential timeouts (took ${probeMs}ms)`);
    t.diagnostic(`create 2 nodes x 4 pods: ${createMs.toFixed(0)}ms; 9-target probe (4 DROPped, 800ms timeout): ${probeMs.toFixed(0)}ms`);
  } finally {
    await topo.destroy();
  }
});

test('crash safety: SIGTERM/SIGINT run the exit handlers; cleanupPrefix sweeps a SIGKILLed run', { skip }, async () => {
  const child = fileURLToPath(new URL('../netns/crash-child.ts', import.meta.url));
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
    const proc = execa(NODE_BIN, [child, 'fxnc'], { reject: false, buffer: false, stdout: 'pipe', forceKillAfterDelay: false });
    try {
      await new Promise<void>((resolve, reject) => {
        proc.stdout.on('data', (d: Buffer) => { if (d.toString().includes('up')) resolve(); });
        proc.once('exit', (code) => reject(new Error(`crash-child exited early (${code})`)));
      });
      assert.equal((await netnsWithPrefix('fxnc')).length, 3);
      proc.kill(signal);
      assert.equal((await proc).signal, signal, 'the child dies by the signal itself');
      if (signal !== 'SIGKILL') assert.deepEqual(await netnsWithPrefix('fxnc'), []);
      else assert.equal((await netnsWithPrefix('fxnc')).length, 3, 'SIGKILL cannot be handled');
    } finally {
      proc.kill('SIGKILL');
      await proc;
      await Topology.cleanupPrefix('fxnc');
    }
    assert.deepEqual(await netnsWithPrefix('fxnc'), []);
  }
});
