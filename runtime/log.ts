// Structured JSON logs (pino) with levels; FENCER_LOG_LEVEL or --log-level sets the level.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, level = process.env.FENCER_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { component: name }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** For tests: a logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
