// The HTTP status an API call ends with: 200 when it succeeds, the apiserver's code when it refuses.
import { ApiException } from '@kubernetes/client-node';

export async function apiStatus(call: () => Promise<unknown>): Promise<number> {
  try {
    await call();
    return 200;
  } catch (e) {
    if (e instanceof ApiException) return e.code;
    throw e;
  }
}
