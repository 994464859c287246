/**
 * Secrets we have seen this run, so that no message we print can carry them by accident: error texts from
 * servers, debug logs and stack traces all pass through `redact` before they reach a terminal.
 */
const secrets = new Set<string>()

/** Remember a secret value (a password, a private key) so that `redact` hides it and every line of it. */
export function registerSecret(value: string | undefined): void {
  if (!value) return
  const trimmed = value.trim()
  if (trimmed.length < 4) return
  secrets.add(trimmed)
  // A PEM key can leak line by line (e.g. in a parser error): hide each substantial line as well.
  for (const line of trimmed.split(/\r?\n/)) {
    if (line.length >= 16 && !line.startsWith('-----')) secrets.add(line.trim())
  }
}

export function redact(text: string): string {
  let result = text
  for (const secret of secrets) {
    if (result.includes(secret)) result = result.split(secret).join('[redacted]')
  }
  return result
}

/** For tests. */
export function forgetSecrets(): void {
  secrets.clear()
}
