// The one door to HNS. Everything the Windows dataplane reads or changes goes through an HnsClient:
// PowerShellHnsClient on a Windows node (powershell-client.ts), RecordingHnsClient in tests.
import type { AclPolicy, SetPolicy } from './hns-types.ts';

/** A local endpoint (remote endpoints of overlay networks are not listed). */
export interface HnsEndpoint { id: string; ip: string }

export interface HnsClient {
  listEndpoints(): Promise<HnsEndpoint[]>;
  /** Every ACL policy on the endpoint, Fencer's and others' (others are passed back untouched). */
  getEndpointAcls(id: string): Promise<AclPolicy[]>;
  /** Replaces the endpoint's whole ACL list (HNS request type Update); its other policies stay. */
  setEndpointAcls(id: string, acls: AclPolicy[]): Promise<void>;
  /** Appends ACLs to the endpoint (HNS request type Add): how a list longer than one request is sent. */
  addEndpointAcls(id: string, acls: AclPolicy[]): Promise<void>;
  /** Every set policy on the network. */
  listSetPolicies(): Promise<SetPolicy[]>;
  /** Creates the sets that do not exist and replaces the values of those that do. */
  addOrUpdateSetPolicies(sets: SetPolicy[]): Promise<void>;
  removeSetPolicies(ids: string[]): Promise<void>;
}

export class HnsError extends Error {
  readonly operation: string;
  constructor(operation: string, message: string) {
    super(`HNS ${operation}: ${message}`);
    this.operation = operation;
  }
}
