// `fencer explain`, the pure part: from a cluster snapshot and the nodes' CompiledPolicySets to an
// explanation per port and direction, based on the compiled rules and checked against the oracle.
import type { CompiledPolicySetSpec, PolicyDiagnostic, Target } from '../crds/types.ts';
import type { ClusterSnapshot, Flow } from '../model/cluster.ts';
import { objectKey } from '../model/cluster.ts';
import { normalizePolicy, type NormPolicy } from '../operator/compile/policy.ts';
import { oracleVerdict, type DirectionVerdict } from '../oracle/oracle.ts';
import { indexSpec, walkDirection, type IndexedSpec, type RuleOutcome } from './compiled-walk.ts';
import { resolveEndpoint, type ResolvedEndpoint } from './endpoints.ts';
import { InspectError } from './errors.ts';
import { choosePorts, portLabel, type PortChoice } from './ports.ts';
import { describeRule, type Direction } from './wording.ts';

/** Whether a node's agent enforces the latest generation of its CompiledPolicySet (live only). */
export interface NodeEnforcement {
  node: string;
  latestGeneration?: number;
  enforcedGeneration?: number;
  inSync: boolean;
  /** The agent has written a status at all. */
  reported: boolean;
  /** lastTransitionTime of the InSync condition. */
  since?: string;
  /** The Degraded condition's message, when degraded. */
  problem?: string;
  /** False when the CompiledPolicySet differs from a fresh compile of the cluster as read now. */
  operatorCurrent?: boolean;
}

export interface RuleRef { policy: string; index: number; ruleId: string; text: string }
export interface UnmatchedRule extends RuleRef { why: string }

export interface DirectionExplanation {
  direction: Direction;
  /** The side whose policies decide this direction: the source for egress, the destination for ingress. */
  endpoint: string;
  pod?: string;
  node?: string;
  isolated: boolean;
  /** Policies that isolate the pod in this direction. */
  selectedBy: string[];
  /** Policies that select the pod, but only for the other direction. */
  selectedForOtherDirection: string[];
  allowedBy: RuleRef[];
  notMatching: UnmatchedRule[];
  allowed: boolean;
  /** One sentence: why this direction allows or denies the flow. */
  summary: string;
  oracle: { isolated: boolean; allowed: boolean; selectedBy: string[]; allowedBy: Array<{ policy: string; index: number }> };
}

export interface PortExplanation {
  port: string;
  protocol: Flow['protocol'];
  number: number;
  name?: string;
  allowed: boolean;
  egress: DirectionExplanation;
  ingress: DirectionExplanation;
  oracleAllowed: boolean;
  /** The compiled rules and the oracle agree on both directions and the verdict. */
  agrees: boolean;
}

export interface EndpointSummary { arg: string; ip: string; pod?: string; node?: string; note?: string }

export interface Explanation {
  source: EndpointSummary;
  destination: EndpointSummary;
  /** Both sides are the same pod: never filtered. */
  samePod: boolean;
  ports: PortExplanation[];
  /** Every explained port is allowed. */
  allowed: boolean;
  agrees: boolean;
  nodes: NodeEnforcement[];
  diagnostics: PolicyDiagnostic[];
}

export interface ExplainInput {
  snapshot: ClusterSnapshot;
  /** CompiledPolicySet specs by node (member lists expanded). */
  specs: Map<string, CompiledPolicySetSpec>;
  from: string;
  to: string;
  /** --port values; default: every port the destination declares. */
  ports?: string[];
  /** Where the specs come from, for the hint when one is missing. */
  origin: 'manifests' | 'cluster';
  enforcement?: Map<string, NodeEnforcement>;
}

export function explain(input: ExplainInput): Explanation {
  const source = resolveEndpoint(input.snapshot, input.from, '--from');
  const destination = resolveEndpoint(input.snapshot, input.to, '--to');
  const ports = choosePorts(input.ports, destination);
  const egressSpec = specFor(input, source, 'source');
  const ingressSpec = specFor(input, destination, 'destination');
  const policies = policyIndex(input.snapshot);
  const samePod = source.ip === destination.ip;
  const explained = ports.map((p) => explainPort(input.snapshot, source, destination, p, egressSpec, ingressSpec, policies, samePod));
  const decisive = new Set(explained.flatMap((e) => [...e.egress.selectedBy, ...e.ingress.selectedBy]));
  const diagnostics = [egressSpec, ingressSpec].flatMap((s) => s?.spec.diagnostics ?? []).filter((d) => decisive.has(d.policy));
  const nodes = [...new Set([source, destination].filter((e) => e.enforceable && e.node).map((e) => e.node!))]
    .flatMap((n) => input.enforcement?.get(n) ?? []);
  return {
    source: summary(source),
    destination: summary(destination),
    samePod,
    ports: explained,
    allowed: explained.every((e) => e.allowed),
    agrees: explained.every((e) => e.agrees),
    nodes,
    diagnostics: uniqueDiagnostics(diagnostics),
  };
}

function summary(e: ResolvedEndpoint): EndpointSummary {
  const out: EndpointSummary = { arg: e.arg, ip: e.ip };
  if (e.pod) out.pod = e.pod;
  if (e.node) out.node = e.node;
  if (e.note) out.note = e.note;
  return out;
}

function specFor(input: ExplainInput, e: ResolvedEndpoint, role: string): IndexedSpec | undefined {
  if (!e.enforceable) return undefined;
  if (!e.node) throw new InspectError(`${e.pod} is not scheduled on a node`);
  const spec = input.specs.get(e.node);
  if (spec) return indexSpec(spec);
  if (input.origin === 'manifests') {
    throw new InspectError(`no CompiledPolicySet for node ${e.node} (the ${role} ${e.pod} runs there): the manifests have no Node ${e.node}; add it (with its podCIDR) so that it gets compiled`);
  }
  throw new InspectError(`no CompiledPolicySet for node ${e.node} (the ${role} ${e.pod} runs there): the operator has not compiled it yet; check that the Fencer operator is running (it leads through a Lease in kube-system; its logs say why it did not write) and that Node ${e.node} exists`);
}

type PolicyLookup = (key: string) => NormPolicy | undefined;

function policyIndex(snapshot: ClusterSnapshot): PolicyLookup {
  const raw = new Map(snapshot.policies.map((p) => [objectKey({ metadata: { namespace: p.metadata?.namespace || 'default', name: p.metadata?.name } }), p]));
  const cache = new Map<string, NormPolicy>();
  return (key) => {
    let n = cache.get(key);
    if (!n) {
      const p = raw.get(key);
      if (!p) return undefined;
      cache.set(key, (n = normalizePolicy(p)));
    }
    return n;
  };
}

function explainPort(snapshot: ClusterSnapshot, source: ResolvedEndpoint, destination: ResolvedEndpoint, port: PortChoice, egressSpec: IndexedSpec | undefined, ingressSpec: IndexedSpec | undefined, policies: PolicyLookup, samePod: boolean): PortExplanation {
  const flow: Flow = { srcIP: source.ip, dstIP: destination.ip, protocol: port.protocol, port: port.port };
  const oracle = oracleVerdict(snapshot, flow);
  const egress = explainDirection('egress', source, destination, flow, egressSpec, policies, oracle.egress, samePod);
  const ingress = explainDirection('ingress', destination, source, flow, ingressSpec, policies, oracle.ingress, samePod);
  const allowed = samePod || (egress.allowed && ingress.allowed);
  const agrees = allowed === oracle.allowed && egress.allowed === oracle.egress.allowed && ingress.allowed === oracle.ingress.allowed;
  const out: PortExplanation = { port: portLabel(port), protocol: port.protocol, number: port.port, allowed, egress, ingress, oracleAllowed: oracle.allowed, agrees };
  if (port.name) out.name = port.name;
  return out;
}

function explainDirection(direction: Direction, local: ResolvedEndpoint, remote: ResolvedEndpoint, flow: Flow, spec: IndexedSpec | undefined, policies: PolicyLookup, oracle: DirectionVerdict, samePod: boolean): DirectionExplanation {
  const walk = walkDirection(spec, direction, local.ip, remote.ip, flow);
  const selectedBy = walk.target ? isolating(walk.target, direction, policies) : [];
  const refs = (o: RuleOutcome): RuleRef => ({ policy: o.rule.policy, index: o.rule.index, ruleId: o.rule.id, text: describeRule(o.rule, direction, spec!.sets) });
  const allowedBy = walk.rules.filter((o) => o.matches).map(refs);
  const notMatching = walk.allowed || samePod ? [] : walk.rules.map((o) => ({ ...refs(o), why: whyNot(o, direction, remote) }));
  const out: DirectionExplanation = {
    direction,
    endpoint: local.pod ?? local.ip,
    isolated: walk.isolated,
    selectedBy: walk.isolated ? selectedBy : [],
    selectedForOtherDirection: walk.isolated ? [] : walk.target?.policies ?? [],
    allowedBy,
    notMatching,
    allowed: samePod || walk.allowed,
    summary: '',
    oracle: { isolated: oracle.isolated, allowed: oracle.allowed, selectedBy: oracle.selectedBy, allowedBy: oracle.allowedBy },
  };
  if (local.pod) out.pod = local.pod;
  if (local.node) out.node = local.node;
  out.summary = directionSummary(out, local, walk.allowed, samePod);
  return out;
}

/** The target's policies that isolate this direction (the compiler's own reading of policyTypes). */
function isolating(target: Target, direction: Direction, policies: PolicyLookup): string[] {
  const withRules = new Set((target[direction]?.rules ?? []).map((r) => r.policy));
  if (!target[direction]) return [];
  return target.policies.filter((key) => {
    const p = policies(key);
    return p ? p[direction] !== undefined : withRules.has(key);
  });
}

/** Why a rule does not admit the flow; the port is named in the block's header, so equal reasons group. */
function whyNot(o: RuleOutcome, direction: Direction, remote: ResolvedEndpoint): string {
  const who = `the ${direction === 'ingress' ? 'source' : 'destination'} ${remote.pod ? `${remote.pod} (${remote.ip})` : remote.ip}`;
  if (!o.peerMatches && !o.portMatches) return `${who} is not among its peers, and the port is not among its ports`;
  if (!o.peerMatches) return `${who} is not among its peers`;
  return 'the port is not among its ports';
}

function directionSummary(d: DirectionExplanation, local: ResolvedEndpoint, compiledAllowed: boolean, samePod: boolean): string {
  const what = d.direction === 'egress' ? 'egress' : 'ingress';
  if (samePod) return `allowed: traffic from a pod to itself is never filtered`;
  if (!local.enforceable) return `allowed: ${local.note}, so no policy applies to its ${what}`;
  if (!d.isolated) {
    const only = d.selectedForOtherDirection.length
      ? ` (${d.selectedForOtherDirection.join(', ')} ${d.selectedForOtherDirection.length === 1 ? 'selects' : 'select'} it for ${d.direction === 'egress' ? 'ingress' : 'egress'} only)`
      : '';
    return `allowed (not isolated): no policy selects ${local.pod} for ${what}${only}`;
  }
  if (compiledAllowed) {
    return `allowed by ${d.allowedBy.map((r) => r.text).join('; and by ')}`;
  }
  return `denied by default: selected by ${d.selectedBy.join(', ')} and no rule allows it`;
}

function uniqueDiagnostics(list: PolicyDiagnostic[]): PolicyDiagnostic[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = `${d.policy}\n${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
