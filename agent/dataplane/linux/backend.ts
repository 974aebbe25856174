// Which iptables the node uses, decided the way kube-proxy's iptables-wrapper does: the backend
// holding kubelet's/kube-proxy's canary chains wins; otherwise the one with more rules; nft on a tie.
import type { KernelRunner } from './runner.ts';

export type IptablesMode = 'nft' | 'legacy';

export interface IptablesTools { mode: IptablesMode; iptables: string; save: string; restore: string }

export function toolsFor(mode: IptablesMode): IptablesTools {
  return { mode, iptables: `iptables-${mode}`, save: `iptables-${mode}-save`, restore: `iptables-${mode}-restore` };
}

export async function detectIptables(runner: KernelRunner): Promise<IptablesTools> {
  const probe = async (mode: IptablesMode) => {
    const r = await runner.run(`iptables-${mode}-save`, []);
    if (r.exitCode !== 0) return { available: false, canary: false, rules: 0 };
    return {
      available: true,
      canary: /^:KUBE-(IPTABLES-HINT|KUBELET-CANARY) /m.test(r.stdout),
      rules: r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length,
    };
  };
  const [nft, legacy] = [await probe('nft'), await probe('legacy')];
  if (legacy.canary && !nft.canary) return toolsFor('legacy');
  if (nft.canary || !legacy.available) return toolsFor('nft');
  return toolsFor(legacy.rules > nft.rules ? 'legacy' : 'nft');
}
