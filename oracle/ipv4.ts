// IPv4 addresses and CIDRs as unsigned 32-bit numbers; IPv6 never matches because pod addresses are IPv4 only.

export interface Cidr {
  network: number;
  mask: number;
}

export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

/** Host bits are masked off, as Kubernetes does, so "10.0.0.5/8" means 10.0.0.0/8. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIPv4(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (address === undefined || !/^\d{1,2}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > 32) return undefined;
  // Shifting by 32 is a no-op in JavaScript, so /0 needs its own mask.
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (address & mask) >>> 0, mask };
}

export function cidrContains(cidr: Cidr, address: number): boolean {
  return ((address & cidr.mask) >>> 0) === cidr.network;
}

export function isIPv6Text(text: string): boolean {
  return text.includes(':');
}
