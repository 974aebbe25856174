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
      // Step aside and re-raise: with no listener left Node dies by the signal as usual. We must not
      // wait for the other listeners to decide — signal-exit (which execa installs) only re-raises
      // when it is the sole listener, so with both of us polite nobody would exit.
      process.off(sig, handler);
      process.kill(process.pid, sig);
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
