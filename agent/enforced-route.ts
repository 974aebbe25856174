// GET /enforced: what this agent has in the kernel, as the content hash of its CompiledPolicySet and
// a digest that also covers the members of shared sets (crds/enforced-digest.ts). Member-only
// changes write no status on purpose (they would cost a write per consuming node), so this is how
// a waiter on this node learns they are in. `?unlike=<digest>&waitMs=<ms>` holds the answer until
// the digest differs or the wait ends (at most 30 s): no polling, no interval of error. The digest
// is computed only when asked, so an agent nobody asks pays nothing.
import { enforcedDigest } from '../crds/enforced-digest.ts';
import type { CompiledPolicySetSpec } from '../crds/types.ts';
import type { Route } from '../runtime/http.ts';

const MAX_WAIT_MS = 30_000;

export interface EnforcedSource {
  enforcedSpec(): CompiledPolicySetSpec | undefined;
  onEnforced(listener: () => void): () => void;
}

export interface EnforcedAnswer { contentHash: string | null; digest: string | null }

export function enforcedRoute(source: EnforcedSource): Route {
  return async (url) => {
    const unlike = url?.searchParams.get('unlike') ?? undefined;
    const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, Number(url?.searchParams.get('waitMs') ?? 0) || 0));
    let answer = current(source);
    if (unlike !== undefined && answer.digest === unlike && waitMs > 0) answer = await changed(source, unlike, waitMs);
    return { status: 200, type: 'application/json', body: `${JSON.stringify(answer)}\n` };
  };
}

function current(source: EnforcedSource): EnforcedAnswer {
  const spec = source.enforcedSpec();
  return spec ? { contentHash: spec.contentHash, digest: enforcedDigest(spec) } : { contentHash: null, digest: null };
}

function changed(source: EnforcedSource, unlike: string, waitMs: number): Promise<EnforcedAnswer> {
  return new Promise((resolve) => {
    const finish = (answer: EnforcedAnswer) => {
      unsubscribe();
      clearTimeout(timer);
      resolve(answer);
    };
    const unsubscribe = source.onEnforced(() => {
      const answer = current(source);
      if (answer.digest !== unlike) finish(answer);
    });
    const timer = setTimeout(() => finish(current(source)), waitMs);
  });
}
