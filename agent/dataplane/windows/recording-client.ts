// An in-memory HNS for tests: endpoints with ACL lists, network set policies, a log of every call, and
// fault injection (fail the Nth call from now). It enforces what real HNS is expected to enforce, so order
// mistakes show up: an ACL may only name existing set policies, a set still named by an ACL cannot be
// removed, and a NESTEDIPSET may only name existing sets.
import { HnsError, type HnsClient, type HnsEndpoint } from './hns-client.ts';
import { isFencerAcl, sortAcls, type AclPolicy, type SetPolicy } from './hns-types.ts';

export interface HnsCall { method: keyof HnsClient; endpoint?: string; ids?: string[]; count?: number }

export interface HnsSnapshot { sets: SetPolicy[]; acls: Record<string, AclPolicy[]> }

const LITERAL = /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/;

export class RecordingHnsClient implements HnsClient {
  readonly calls: HnsCall[] = [];
  private readonly endpoints = new Map<string, { ip: string; acls: AclPolicy[] }>();
  private readonly sets = new Map<string, SetPolicy>();
  private failAt?: number;

  addEndpoint(id: string, ip: string, acls: AclPolicy[] = []): void {
    this.endpoints.set(id, { ip, acls: structuredClone(acls) });
  }

  removeEndpoint(id: string): void {
    this.endpoints.delete(id);
  }

  /** The next call's number is calls.length + 1; the call numbered calls.length + n fails once. */
  failOnCall(n: number): void {
    this.failAt = this.calls.length + n;
  }

  clearCalls(): void {
    this.calls.length = 0;
    this.failAt = undefined;
  }

  /** Fencer-relevant state: every set policy, and each endpoint's ACLs by IP, sorted. */
  snapshot(): HnsSnapshot {
    const acls: Record<string, AclPolicy[]> = {};
    for (const ep of this.endpoints.values()) acls[ep.ip] = sortAcls(structuredClone(ep.acls));
    return { sets: [...this.sets.values()].sort((a, b) => (a.Id < b.Id ? -1 : 1)).map((s) => ({ ...s })), acls };
  }

  async listEndpoints(): Promise<HnsEndpoint[]> {
    this.record({ method: 'listEndpoints' });
    return [...this.endpoints.entries()].map(([id, e]) => ({ id, ip: e.ip }));
  }

  async getEndpointAcls(id: string): Promise<AclPolicy[]> {
    this.record({ method: 'getEndpointAcls', endpoint: id });
    return structuredClone(this.endpoint(id).acls);
  }

  async setEndpointAcls(id: string, acls: AclPolicy[]): Promise<void> {
    this.record({ method: 'setEndpointAcls', endpoint: id, count: acls.length });
    const ep = this.endpoint(id);
    this.checkReferences(acls);
    ep.acls = structuredClone(acls);
  }

  async addEndpointAcls(id: string, acls: AclPolicy[]): Promise<void> {
    this.record({ method: 'addEndpointAcls', endpoint: id, count: acls.length });
    const ep = this.endpoint(id);
    this.checkReferences(acls);
    ep.acls.push(...structuredClone(acls));
  }

  async listSetPolicies(): Promise<SetPolicy[]> {
    this.record({ method: 'listSetPolicies' });
    return [...this.sets.values()].map((s) => ({ ...s }));
  }

  async addOrUpdateSetPolicies(sets: SetPolicy[]): Promise<void> {
    this.record({ method: 'addOrUpdateSetPolicies', ids: sets.map((s) => s.Id) });
    for (const s of sets) if (s.PolicyType === 'NESTEDIPSET') for (const v of s.Values.split(',')) if (v && !this.sets.has(v) && !sets.some((o) => o.Id === v)) throw new HnsError('modify network', `nested set ${v} does not exist`);
    for (const s of sets) this.sets.set(s.Id, { ...s });
  }

  async removeSetPolicies(ids: string[]): Promise<void> {
    this.record({ method: 'removeSetPolicies', ids: [...ids] });
    for (const id of ids) {
      if (!this.sets.has(id)) throw new HnsError('modify network', `set policy ${id} does not exist`);
      const user = [...this.endpoints.values()].find((e) => e.acls.some((a) => referencedSets(a).includes(id)));
      if (user) throw new HnsError('modify network', `set policy ${id} is in use by an ACL of endpoint ${user.ip}`);
    }
    for (const id of ids) this.sets.delete(id);
  }

  private record(call: HnsCall): void {
    this.calls.push(call);
    if (this.calls.length === this.failAt) {
      this.failAt = undefined;
      throw new HnsError(call.method, `injected failure of call ${this.calls.length}`);
    }
  }

  private endpoint(id: string): { ip: string; acls: AclPolicy[] } {
    const ep = this.endpoints.get(id);
    if (!ep) throw new HnsError('open endpoint', `endpoint ${id} was not found`);
    return ep;
  }

  private checkReferences(acls: AclPolicy[]): void {
    for (const a of acls) for (const id of referencedSets(a)) if (!this.sets.has(id)) throw new HnsError('modify endpoint', `ACL ${a.Id} names set policy ${id}, which does not exist`);
  }
}

/** Set policy Ids named by a Fencer ACL's address fields (foreign ACLs use literal addresses). */
function referencedSets(a: AclPolicy): string[] {
  if (!isFencerAcl(a)) return [];
  return [a.LocalAddresses, a.RemoteAddresses].flatMap((f) => (f ? f.split(',') : [])).filter((t) => !LITERAL.test(t));
}
