// Crash safety for the netns harness: live topologies are destroyed synchronously when the process
// exits (normally, by uncaught exception) or is told to stop with SIGINT / SIGTERM.

export interface SyncDestroyable { destroySync(): void }

const live = new Set<SyncDestroyable>();
let installed = false;

function destroyAll(): void {
  for (const t of [...live]) {
    try { t.destroySync(); } catch { /* best effort while dying */ }
  }
  live.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', destroyAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const handler = (): void => {
      destroyAll();
      // If nobody else handles the signal, restore the default behaviour (die by the signal).
      if (process.listenerCount(sig) === 1) {
        process.off(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

export function track(t: SyncDestroyable): void {
  install();
  live.add(t);
}

export function untrack(t: SyncDestroyable): void {
  live.delete(t);
}
