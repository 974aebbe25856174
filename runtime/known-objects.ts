// What a list+watch has delivered, keyed by namespace/name, announcing only real changes: an object
// whose resourceVersion is unchanged is not an update, and a relist's missing objects are deletes.
export interface Versioned { metadata?: { name?: string; namespace?: string; resourceVersion?: string } }
export type ChangeType = 'upsert' | 'delete';
export type ChangeHandler<T> = (type: ChangeType, object: T) => void;

export class KnownObjects<T extends Versioned> {
  private readonly handlers: ChangeHandler<T>[] = [];
  private readonly known = new Map<string, T>();

  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  items(): T[] {
    return [...this.known.values()];
  }

  upsert(obj: T): void {
    const key = keyOf(obj);
    const before = this.known.get(key);
    if (before && before.metadata?.resourceVersion === obj.metadata?.resourceVersion) return;
    this.known.set(key, obj);
    for (const h of this.handlers) h('upsert', obj);
  }

  remove(obj: T): void {
    const key = keyOf(obj);
    const before = this.known.get(key);
    if (!before) return;
    this.known.delete(key);
    for (const h of this.handlers) h('delete', before);
  }

  /** After a full list: everything known that the list no longer holds is deleted. */
  replace(listed: readonly T[]): void {
    const present = new Set(listed.map(keyOf));
    for (const obj of listed) this.upsert(obj);
    for (const [key, obj] of this.known) if (!present.has(key)) this.remove(obj);
  }
}

function keyOf(o: Versioned): string {
  return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
}
