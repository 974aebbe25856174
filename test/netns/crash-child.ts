// Test fixture: builds a one-node topology with one serving pod, prints "up", then idles until
// killed. netns-topology.test.ts signals it to prove the crash handlers (and cleanupPrefix) work.
// Usage: node crash-child.ts <prefix>
import { Topology } from '../../netns/topology.ts';

const prefix = process.argv[2] ?? 'fxnc';
const topo = await Topology.create({ prefix, nodes: [{ name: 'n1', podCIDR: '10.244.9.0/24' }] });
await topo.addPod('n1', { name: 'a', ip: '10.244.9.2', tcp: [80], udp: [53] });
process.stdout.write('up\n');
setInterval(() => {}, 1 << 30);
