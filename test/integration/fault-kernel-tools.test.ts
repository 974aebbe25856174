// Kernel tools failing for a while on the iptables dataplane (a PATH shim makes iptables-restore,
// then ipset, exit 1): Degraded with the tool's own words, back-off, no crash, the last state kept,
// recovery (test/faults/tool-bed.ts; the nftables dataplane's: fault-kernel-tools-nftables.test.ts).
import { test, before, after } from 'node:test';
import { kernelSnapshot } from '../faults/kernel.ts';
import { ToolBed } from '../faults/tool-bed.ts';
import { testCluster } from './env.ts';

const FAIL_SECONDS = Number(process.env.FENCER_TOOL_FAIL_SECONDS ?? 12);
let bed: ToolBed;

before(async () => {
  bed = await ToolBed.start({
    cluster: testCluster(), namespace: 'fault-tools', nodes: ['ft1', 'ft2'], prefix: 'ftl', dataplane: 'iptables',
    snapshot: kernelSnapshot, testFile: 'test/integration/fault-kernel-tools.test.ts',
  });
});

after(async () => {
  await bed?.stop();
});

// The first change needs only iptables-restore (a port more); the second a new set (an ipBlock peer).
test(`iptables-restore failing for ${FAIL_SECONDS} s: Degraded with the reason, back-off, no crash, recovery`, (t) => bed.run(t, {
  id: '06-iptables-restore-fails', what: 'iptables-restore', tools: ['iptables-nft-restore', 'iptables-legacy-restore'], message: 'iptables-restore: line 7 failed (injected)', policy: bed.webPolicy([80, 81]),
}, FAIL_SECONDS));

test(`ipset (every subcommand) failing for ${FAIL_SECONDS} s: Degraded with the reason, back-off, no crash, recovery`, (t) => bed.run(t, {
  id: '06-ipset-fails', what: 'ipset (every subcommand)', tools: ['ipset'], message: 'ipset v7.17: Kernel error received: injected', policy: bed.webPolicy([80, 81], '192.0.2.0/24'),
}, FAIL_SECONDS));
