// nft failing for a while on the nftables dataplane (a PATH shim makes every nft call exit 1: the
// member-change session cannot start and nft -f fails): Degraded with nft's own words, back-off,
// no crash, the last table kept, recovery (test/faults/tool-bed.ts).
import { test, before, after } from 'node:test';
import { inNetns } from '../faults/kernel.ts';
import { ToolBed } from '../faults/tool-bed.ts';
import { testCluster } from './env.ts';

const FAIL_SECONDS = Number(process.env.FENCER_TOOL_FAIL_SECONDS ?? 12);
let bed: ToolBed;

before(async () => {
  bed = await ToolBed.start({
    cluster: testCluster(), namespace: 'fault-tools-nft', nodes: ['ftn1', 'ftn2'], prefix: 'ftn', dataplane: 'nftables',
    // Read around the shim: the real nft, whatever PATH says.
    snapshot: (netns) => inNetns(netns, ['/usr/sbin/nft', 'list', 'table', 'inet', 'fencer']), testFile: 'test/integration/fault-kernel-tools-nftables.test.ts',
  });
});

after(async () => {
  await bed?.stop();
});

// A port more and a new peer block: rules and sets change in one transaction.
test(`nft (every call) failing for ${FAIL_SECONDS} s: Degraded with the reason, back-off, no crash, recovery`, (t) => bed.run(t, {
  id: '06-nft-fails', what: 'nft (every call, the member-change session included)', tools: ['nft'], message: 'Error: Could not process rule: injected', policy: bed.webPolicy([80, 81], '192.0.2.0/24'),
}, FAIL_SECONDS));
