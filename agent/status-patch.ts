// The agent's status write as a JSON merge patch (RFC 7386): only the status travels, not the spec
// (up to the 1 MiB budget on every apply). Keys the new status drops are sent as null so the result
// equals `next` exactly; arrays (conditions) are replaced whole, as merge patches do.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The merge patch that turns `current` into `next` (both plain JSON objects). */
export function mergePatchFor(current: unknown, next: Record<string, unknown>): Record<string, Json> {
  const patch: Record<string, Json> = {};
  const before = isObject(current) ? current : {};
  for (const key of Object.keys(before)) if (!(key in next) || next[key] === undefined) patch[key] = null;
  for (const [key, value] of Object.entries(next)) {
    if (value === undefined) continue;
    patch[key] = isObject(value) && isObject(before[key]) ? mergePatchFor(before[key], value) : (value as Json);
  }
  return patch;
}
