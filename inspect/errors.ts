// Every failure the inspect commands expect says what is wrong and what to do about it; the CLI
// prints the message alone (no stack) and exits with the code.
export class InspectError extends Error {
  /** 2: bad input or missing state; 3: the compiled rules and the oracle disagree (a bug). */
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** "a, b, c" or "a, b, c and 7 more": lists in error messages stay one line. */
export function listSome(items: string[], max = 12): string {
  if (items.length === 0) return 'none';
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}
