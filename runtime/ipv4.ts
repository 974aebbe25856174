// IPv4 address arithmetic and the CIDR algebra that turns ipBlock {cidr, except} into plain CIDRs,
// so no dataplane needs "except" (HNS has none) and no set holds a /0 (hash:net cannot).
export interface Interval { start: number; end: number }

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIPv4(text: string): number | undefined {
  const m = IPV4.exec(text);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

export type CidrParse = { ok: true; interval: Interval } | { ok: false; reason: string };

export function parseCidr(text: string): CidrParse {
  if (text.includes(':')) return { ok: false, reason: `IPv6 CIDR "${text}" is not supported yet` };
  const [addr, bits, extra] = text.split('/');
  const ip = parseIPv4(addr);
  const prefix = Number(bits);
  if (ip === undefined || extra !== undefined || bits === undefined || !/^\d{1,2}$/.test(bits) || prefix > 32) {
    return { ok: false, reason: `"${text}" is not an IPv4 CIDR` };
  }
  const size = 2 ** (32 - prefix);
  const start = Math.floor(ip / size) * size; // host bits set are masked, as the kernel would
  return { ok: true, interval: { start, end: start + size - 1 } };
}

/** The union of `list` as sorted disjoint intervals; overlapping and adjacent ones are joined. */
export function mergeIntervals(list: readonly Interval[]): Interval[] {
  const merged: Interval[] = [];
  for (const i of [...list].sort((a, b) => a.start - b.start)) {
    const last = merged[merged.length - 1];
    if (last && i.start <= last.end + 1) last.end = Math.max(last.end, i.end);
    else merged.push({ ...i });
  }
  return merged;
}

/** base minus every interval of `holes`, as sorted disjoint intervals. */
export function subtract(base: Interval, holes: Interval[]): Interval[] {
  let parts: Interval[] = [base];
  for (const h of holes) {
    parts = parts.flatMap((p) => {
      if (h.end < p.start || h.start > p.end) return [p];
      const out: Interval[] = [];
      if (h.start > p.start) out.push({ start: p.start, end: h.start - 1 });
      if (h.end < p.end) out.push({ start: h.end + 1, end: p.end });
      return out;
    });
  }
  return parts;
}

/** The fewest CIDRs covering exactly the interval; never wider than /1. */
export function intervalToCidrs({ start, end }: Interval): string[] {
  const out: string[] = [];
  let cur = start;
  while (cur <= end) {
    let size = 2 ** 31;
    while (size > 1 && (cur % size !== 0 || cur + size - 1 > end)) size /= 2;
    out.push(`${formatIPv4(cur)}/${32 - Math.log2(size)}`);
    cur += size;
  }
  return out;
}

export function ipInInterval(ip: number, i: Interval): boolean {
  return ip >= i.start && ip <= i.end;
}
