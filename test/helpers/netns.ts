// A bare network namespace for dataplane tests, removed even when the test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export function createNetns(prefix = 'fencer-t'): { name: string; exec: (cmd: string[], input?: string) => string; destroy: () => void } {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  const exec = (cmd: string[], input?: string) => execFileSync('ip', ['netns', 'exec', name, ...cmd], { encoding: 'utf8', input });
  const destroy = () => {
    process.removeListener('exit', destroy);
    try {
      // ipsets live per namespace and go away with it; iptables state too.
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch { /* already gone */ }
  };
  process.once('exit', destroy);
  return { name, exec, destroy };
}

/** Runs `fn` with a fresh namespace and removes the namespace afterwards, also when `fn` fails. */
export async function withNetns<T>(fn: (ns: ReturnType<typeof createNetns>) => Promise<T>, prefix?: string): Promise<T> {
  const ns = createNetns(prefix);
  try {
    return await fn(ns);
  } finally {
    ns.destroy();
  }
}
