// HnsClient for a Windows node: Windows PowerShell calls the HCN API of computenetwork.dll through P/Invoke
// (the functions hcsshim's hcn package and Microsoft's hns.v2.psm1 use), and Node builds and parses the
// JSON. Request shapes follow hcsshim (hcn.ModifyEndpointSettingRequest / ModifyNetworkSettingRequest with
// ResourceType "Policy") and Azure NPM (an endpoint's ACLs are replaced by an Update carrying its other
// policies first, then the ACLs; set policies are Added, Updated or Removed on the network).
// UNRUN: no Windows host was available where this was written. Every call starts a PowerShell process
// (about a second with the Add-Type compile); docs/windows.md lists what a Windows node must confirm.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../../runtime/run-process.ts';
import { HnsError, type HnsClient, type HnsEndpoint } from './hns-client.ts';
import { isFencerAcl, type AclPolicy, type SetPolicy } from './hns-types.ts';

export interface PowerShellHnsClientOptions {
  /** The HNS network of the pods (Azure CNI: "azure"; Calico: "Calico"; flannel: "cbr0" or "vxlan0"). */
  network?: string;
  powershell?: string;
  timeoutMs?: number;
}

interface HcnPolicy { Type: string; Settings?: object }
interface HcnEndpoint { ID: string; HostComputeNetwork?: string; Flags?: number; IpConfigurations?: Array<{ IpAddress?: string }>; Policies?: HcnPolicy[] }
interface HcnNetwork { ID: string; Policies?: HcnPolicy[] }

const REMOTE_ENDPOINT = 1; // hcn.EndpointFlagsRemoteEndpoint

export class PowerShellHnsClient implements HnsClient {
  private readonly network: string;
  private readonly powershell: string;
  private readonly timeoutMs: number;

  constructor(opts: PowerShellHnsClientOptions = {}) {
    this.network = opts.network ?? 'azure';
    this.powershell = opts.powershell ?? 'powershell.exe';
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  async listEndpoints(): Promise<HnsEndpoint[]> {
    const network = await this.queryNetwork();
    const endpoints = (await this.run('list-endpoints')) as HcnEndpoint[];
    return endpoints
      .filter((e) => sameGuid(e.HostComputeNetwork, network.ID) && ((e.Flags ?? 0) & REMOTE_ENDPOINT) === 0)
      .flatMap((e) => (e.IpConfigurations ?? []).filter((c) => c.IpAddress && !c.IpAddress.includes(':')).map((c) => ({ id: e.ID, ip: c.IpAddress! })));
  }

  async getEndpointAcls(id: string): Promise<AclPolicy[]> {
    const ep = (await this.run('query-endpoint', { endpoint: id })) as HcnEndpoint;
    return (ep.Policies ?? []).filter((p) => p.Type === 'ACL').map((p) => readAcl(p.Settings ?? {}));
  }

  async setEndpointAcls(id: string, acls: AclPolicy[]): Promise<void> {
    const ep = (await this.run('query-endpoint', { endpoint: id })) as HcnEndpoint;
    const others = (ep.Policies ?? []).filter((p) => p.Type !== 'ACL');
    await this.modifyEndpoint(id, 'Update', [...others, ...acls.map((a) => ({ Type: 'ACL', Settings: a }))]);
  }

  async addEndpointAcls(id: string, acls: AclPolicy[]): Promise<void> {
    await this.modifyEndpoint(id, 'Add', acls.map((a) => ({ Type: 'ACL', Settings: a })));
  }

  async listSetPolicies(): Promise<SetPolicy[]> {
    return setPolicies(await this.queryNetwork());
  }

  async addOrUpdateSetPolicies(sets: SetPolicy[]): Promise<void> {
    const existing = new Set((await this.listSetPolicies()).map((s) => s.Id));
    const add = sets.filter((s) => !existing.has(s.Id));
    const update = sets.filter((s) => existing.has(s.Id));
    if (add.length) await this.modifyNetwork('Add', add);
    if (update.length) await this.modifyNetwork('Update', update);
  }

  async removeSetPolicies(ids: string[]): Promise<void> {
    const wanted = new Set(ids);
    const current = (await this.listSetPolicies()).filter((s) => wanted.has(s.Id));
    if (current.length) await this.modifyNetwork('Remove', current);
  }

  private async queryNetwork(): Promise<HcnNetwork> {
    return (await this.run('query-network')) as HcnNetwork;
  }

  private async modifyEndpoint(id: string, requestType: 'Add' | 'Update', policies: HcnPolicy[]): Promise<void> {
    await this.run('modify-endpoint', { endpoint: id, settings: JSON.stringify({ ResourceType: 'Policy', RequestType: requestType, Settings: { Policies: policies } }) });
  }

  private async modifyNetwork(requestType: 'Add' | 'Update' | 'Remove', sets: SetPolicy[]): Promise<void> {
    const policies = sets.map((s) => ({ Type: 'SetPolicy', Settings: s }));
    await this.run('modify-network', { settings: JSON.stringify({ ResourceType: 'Policy', RequestType: requestType, Settings: { Policies: policies } }) });
  }

  /** Runs one HCN operation in a fresh PowerShell; the request travels in a file, the answer on stdout. */
  private async run(op: string, fields: Record<string, string> = {}): Promise<unknown> {
    const dir = await mkdtemp(join(tmpdir(), 'fencer-hns-'));
    try {
      const script = join(dir, 'hcn.ps1');
      const request = join(dir, 'request.json');
      await writeFile(script, HCN_SCRIPT);
      await writeFile(request, JSON.stringify({ op, network: this.network, ...fields }));
      const r = await runProcess(this.powershell, ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', script, request], { timeoutMs: this.timeoutMs });
      if (r.exitCode !== 0) throw new HnsError(op, String(r.stderr || r.stdout || `exit ${r.exitCode}`).trim().split('\n').slice(0, 3).join(' / '));
      const out = String(r.stdout).trim();
      return out ? JSON.parse(out) : undefined;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

/** Fencer's ACLs in the form the translator writes them (HNS may add fields or spell "any" as 256); others as read. */
function readAcl(settings: object): AclPolicy {
  const raw = settings as unknown as AclPolicy;
  if (!isFencerAcl(raw)) return raw;
  const acl = { Id: raw.Id, Action: raw.Action, Direction: raw.Direction } as AclPolicy;
  for (const f of ['Protocols', 'LocalAddresses', 'RemoteAddresses', 'LocalPorts', 'RemotePorts'] as const) {
    const v = raw[f];
    if (v !== undefined && v !== '' && !(f === 'Protocols' && v === '256')) acl[f] = String(v);
  }
  acl.RuleType = 'Switch';
  acl.Priority = Number(raw.Priority);
  return acl;
}

function setPolicies(network: HcnNetwork): SetPolicy[] {
  return (network.Policies ?? []).filter((p) => p.Type === 'SetPolicy').map((p) => p.Settings as unknown as SetPolicy);
}

function sameGuid(a: string | undefined, b: string | undefined): boolean {
  const norm = (g?: string) => (g ?? '').replace(/[{}]/g, '').toLowerCase();
  return norm(a) !== '' && norm(a) === norm(b);
}

/**
 * Windows PowerShell 5.1 script: P/Invoke into computenetwork.dll, one operation per run. It never
 * re-serialises HCN's JSON (ConvertTo-Json would truncate depth and unroll arrays): it prints what HCN
 * returns and passes on the request string Node built.
 */
const HCN_SCRIPT = String.raw`param([Parameter(Mandatory = $true)][string]$RequestPath)
$ErrorActionPreference = 'Stop'
[Console]::OutputEncoding = [Text.Encoding]::UTF8
$request = Get-Content -Raw -Encoding UTF8 -Path $RequestPath | ConvertFrom-Json
Add-Type -Namespace FencerHcn -Name Native -MemberDefinition @'
[DllImport("computenetwork.dll")] public static extern int HcnEnumerateNetworks([MarshalAs(UnmanagedType.LPWStr)] string query, [MarshalAs(UnmanagedType.LPWStr)] out string networks, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnOpenNetwork(ref Guid id, out IntPtr network, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnQueryNetworkProperties(IntPtr network, [MarshalAs(UnmanagedType.LPWStr)] string query, [MarshalAs(UnmanagedType.LPWStr)] out string properties, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnModifyNetwork(IntPtr network, [MarshalAs(UnmanagedType.LPWStr)] string settings, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnCloseNetwork(IntPtr network);
[DllImport("computenetwork.dll")] public static extern int HcnEnumerateEndpoints([MarshalAs(UnmanagedType.LPWStr)] string query, [MarshalAs(UnmanagedType.LPWStr)] out string endpoints, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnOpenEndpoint(ref Guid id, out IntPtr endpoint, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnQueryEndpointProperties(IntPtr endpoint, [MarshalAs(UnmanagedType.LPWStr)] string query, [MarshalAs(UnmanagedType.LPWStr)] out string properties, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnModifyEndpoint(IntPtr endpoint, [MarshalAs(UnmanagedType.LPWStr)] string settings, [MarshalAs(UnmanagedType.LPWStr)] out string result);
[DllImport("computenetwork.dll")] public static extern int HcnCloseEndpoint(IntPtr endpoint);
'@
$Query = '{"SchemaVersion":{"Major":2,"Minor":0},"Flags":0}'

function Assert-Ok([int]$hr, [string]$result, [string]$call) {
  if ($hr -ne 0) { throw ('{0} failed with HRESULT 0x{1:X8}: {2}' -f $call, $hr, $result) }
}

function Get-Guids([string]$json) {
  return @(ConvertFrom-Json $json | ForEach-Object { $_ } | ForEach-Object { [Guid]$_ })
}

function Find-Network([string]$name) {
  $filter = ConvertTo-Json -Compress -InputObject @{ Name = $name }
  $query = ConvertTo-Json -Compress -InputObject @{ SchemaVersion = @{ Major = 2; Minor = 0 }; Flags = 0; Filter = $filter }
  $ids = $null; $res = $null
  Assert-Ok ([FencerHcn.Native]::HcnEnumerateNetworks($query, [ref]$ids, [ref]$res)) $res 'HcnEnumerateNetworks'
  $guids = Get-Guids $ids
  if ($guids.Count -ne 1) { throw "expected one HNS network named '$name', found $($guids.Count)" }
  return $guids[0]
}

function Invoke-Network([string]$name, [string]$modify) {
  $id = Find-Network $name
  $h = [IntPtr]::Zero; $res = $null; $props = $null
  Assert-Ok ([FencerHcn.Native]::HcnOpenNetwork([ref]$id, [ref]$h, [ref]$res)) $res 'HcnOpenNetwork'
  try {
    if ($modify) { Assert-Ok ([FencerHcn.Native]::HcnModifyNetwork($h, $modify, [ref]$res)) $res 'HcnModifyNetwork'; return '' }
    Assert-Ok ([FencerHcn.Native]::HcnQueryNetworkProperties($h, $Query, [ref]$props, [ref]$res)) $res 'HcnQueryNetworkProperties'
    return $props
  } finally { [void][FencerHcn.Native]::HcnCloseNetwork($h) }
}

function Invoke-Endpoint([Guid]$id, [string]$modify) {
  $h = [IntPtr]::Zero; $res = $null; $props = $null
  Assert-Ok ([FencerHcn.Native]::HcnOpenEndpoint([ref]$id, [ref]$h, [ref]$res)) $res 'HcnOpenEndpoint'
  try {
    if ($modify) { Assert-Ok ([FencerHcn.Native]::HcnModifyEndpoint($h, $modify, [ref]$res)) $res 'HcnModifyEndpoint'; return '' }
    Assert-Ok ([FencerHcn.Native]::HcnQueryEndpointProperties($h, $Query, [ref]$props, [ref]$res)) $res 'HcnQueryEndpointProperties'
    return $props
  } finally { [void][FencerHcn.Native]::HcnCloseEndpoint($h) }
}

function Get-Endpoints {
  $ids = $null; $res = $null
  Assert-Ok ([FencerHcn.Native]::HcnEnumerateEndpoints($Query, [ref]$ids, [ref]$res)) $res 'HcnEnumerateEndpoints'
  $all = @(foreach ($id in (Get-Guids $ids)) { Invoke-Endpoint $id '' })
  return '[' + ($all -join ',') + ']'
}

switch ($request.op) {
  'query-network' { [Console]::Out.Write((Invoke-Network $request.network '')) }
  'modify-network' { [void](Invoke-Network $request.network $request.settings) }
  'list-endpoints' { [Console]::Out.Write((Get-Endpoints)) }
  'query-endpoint' { [Console]::Out.Write((Invoke-Endpoint ([Guid]$request.endpoint) '')) }
  'modify-endpoint' { [void](Invoke-Endpoint ([Guid]$request.endpoint) $request.settings) }
  default { throw "unknown operation $($request.op)" }
}
`;
