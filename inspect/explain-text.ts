// `fencer explain` as text: one block per port, one line per direction, then the verdict.
import type { DirectionExplanation, EndpointSummary, Explanation, NodeEnforcement, PortExplanation } from './explain.ts';

export function formatExplanation(e: Explanation): string {
  const lines: string[] = [`${endpoint(e.source)} -> ${endpoint(e.destination)}`];
  // Ports explained by the very same words share one block.
  const groups = new Map<string, PortExplanation[]>();
  for (const p of e.ports) {
    const key = JSON.stringify([p.allowed, portBody(p)]);
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const ports of groups.values()) lines.push('', portHeader(ports), ...portBody(ports[0]));
  if (e.diagnostics.length) {
    lines.push('', 'notes on the policies involved (the compiler could not honour all of them; it failed closed):');
    for (const d of e.diagnostics) lines.push(`  ${d.policy}: ${d.message}`);
  }
  if (e.nodes.length) {
    lines.push('', 'enforcement:');
    for (const n of e.nodes) lines.push(`  ${enforcementLine(n)}`);
  }
  lines.push('', verdictLine(e));
  if (!e.agrees) {
    const behind = e.nodes.filter((n) => n.operatorCurrent === false).map((n) => n.node);
    if (behind.length) {
      lines.push(`the compiled rules and the reference semantics (oracle) disagree, but the CompiledPolicySet of ${behind.join(' and ')} is behind`);
      lines.push('the cluster as read now: the operator has not caught up with a recent change yet; run the command again in a moment');
    } else {
      lines.push('the compiled rules and the reference semantics (oracle) disagree: this is a bug in Fencer;');
      lines.push('please report it with this output and the manifests involved');
    }
  }
  return `${lines.join('\n')}\n`;
}

function endpoint(s: EndpointSummary): string {
  if (s.pod) return `${s.pod} (${s.ip}${s.node ? ` on ${s.node}` : ''})`;
  return s.ip;
}

function portHeader(ports: PortExplanation[]): string {
  const names = ports.map((p) => (ports.length === 1 && p.name ? `${p.port} ("${p.name}")` : p.port));
  return `${names.join(', ')}: ${ports[0].allowed ? 'ALLOWED' : 'DENIED'}`;
}

function portBody(p: PortExplanation): string[] {
  const out: string[] = [];
  for (const d of [p.egress, p.ingress]) out.push(...formatDirection(d));
  if (!p.agrees) {
    out.push(`  MISMATCH: the oracle says ${p.oracleAllowed ? 'allowed' : 'denied'}: ${oracleDirection(p.egress)}; ${oracleDirection(p.ingress)}`);
  }
  return out;
}

function formatDirection(d: DirectionExplanation): string[] {
  const where = d.node ? ` on ${d.node}` : '';
  const out = [`  ${d.direction} ${d.direction === 'egress' ? 'from' : 'to'} ${d.endpoint}${where}: ${d.summary}`];
  if (d.isolated && d.allowed && d.allowedBy.length) out.push(`    (isolated for ${d.direction} by ${d.selectedBy.join(', ')})`);
  for (const r of d.notMatching) {
    out.push(`    ${r.text}`);
    out.push(`      does not match: ${r.why}`);
  }
  return out;
}

function oracleDirection(d: DirectionExplanation): string {
  const o = d.oracle;
  if (!o.isolated) return `${d.direction} not isolated`;
  const by = o.allowedBy.map((r) => `${r.policy} ${d.direction} rule ${r.index}`).join(', ');
  return `${d.direction} isolated by ${o.selectedBy.join(', ')}, ${o.allowed ? `allowed by ${by}` : 'no rule allows it'}`;
}

export function enforcementLine(n: NodeEnforcement): string {
  const behind = n.operatorCurrent === false ? '; its CompiledPolicySet is behind the cluster as read now (the operator has not caught up yet)' : '';
  if (!n.reported) return `${n.node}: agent has not reported: nothing says these rules are in force there${behind}`;
  const gen = n.enforcedGeneration === undefined ? 'enforces nothing yet' : `enforces generation ${n.enforcedGeneration}`;
  const latest = n.latestGeneration === undefined ? '' : n.enforcedGeneration === n.latestGeneration ? ', the latest' : ` (latest: ${n.latestGeneration})`;
  const sync = n.inSync ? `in sync${n.since ? ` since ${n.since}` : ''}` : `NOT in sync${n.since ? ` since ${n.since}` : ''}`;
  const problem = n.problem ? `; degraded: ${n.problem}` : '';
  return `${n.node}: ${gen}${latest}; ${sync}${problem}${behind}`;
}

function verdictLine(e: Explanation): string {
  const check = e.agrees ? 'the oracle agrees' : 'THE ORACLE DISAGREES';
  if (e.ports.length === 1) {
    const p = e.ports[0];
    const blocker = p.allowed ? '' : ` by ${[p.egress, p.ingress].filter((d) => !d.allowed).map((d) => `${d.direction}${d.node ? ` on ${d.node}` : ''}`).join(' and ')}`;
    return `verdict: ${p.allowed ? 'allowed' : `denied${blocker}`} (${check})`;
  }
  const allowed = e.ports.filter((p) => p.allowed).map((p) => p.port);
  const denied = e.ports.filter((p) => !p.allowed).map((p) => p.port);
  const parts = [allowed.length ? `allowed on ${allowed.join(', ')}` : '', denied.length ? `denied on ${denied.join(', ')}` : ''].filter(Boolean);
  return `verdict: ${parts.join('; ')} (${check})`;
}
