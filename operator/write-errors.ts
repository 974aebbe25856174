// The apiserver's own message out of a failed call, for logs.
import { ApiException } from '@kubernetes/client-node';

export function errorText(e: unknown): string {
  if (e instanceof ApiException) {
    try {
      return (JSON.parse(String(e.body)) as { message?: string }).message ?? String(e.body);
    } catch {
      return String(e.body ?? e.message);
    }
  }
  return (e as Error)?.message ?? String(e);
}
