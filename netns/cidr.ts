// IPv4 arithmetic for the netns harness: enough to derive gateways and check pod IPs.

export function parseIPv4(s: string): number {
  const parts = s.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${s}`);
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) throw new Error(`not an IPv4 address: ${s}`);
    n = n * 256 + Number(p);
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export interface Cidr { base: number; len: number }

export function parseCidr(cidr: string): Cidr {
  const [addr, lenText] = cidr.split('/');
  const len = Number(lenText);
  if (!Number.isInteger(len) || len < 8 || len > 30) throw new Error(`unsupported CIDR (need /8../30): ${cidr}`);
  const size = 2 ** (32 - len);
  const base = Math.floor(parseIPv4(addr) / size) * size;
  return { base, len };
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const n = parseIPv4(ip);
  return n >= c.base && n < c.base + 2 ** (32 - c.len);
}

/** The first host address of a CIDR (the node bridge / pod gateway). */
export function firstHost(c: Cidr): string {
  return formatIPv4(c.base + 1);
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.base)}/${c.len}`;
}
