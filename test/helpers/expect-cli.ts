/**
 * Assertions on what the built CLI printed: an error is one `Error:` line and one `Hint:` line on stderr, an exit
 * code from the README's table, nothing on stdout, no stack trace (without --debug), and never a secret.
 */
import { expect } from 'vitest'
import type { Sandbox } from '../sandbox/index.js'
import type { CliResult } from './cli.js'

export interface ExpectedError {
  code: number
  /** A substring of (or a pattern for) the `Error:` line. */
  message: string | RegExp
  /** A substring of (or a pattern for) the `Hint:` line. */
  hint?: string | RegExp
}

export function expectCliError(result: CliResult, expected: ExpectedError): void {
  const context = `stderr was:\n${result.stderr}`
  expect(result.code, context).toBe(expected.code)
  expect(result.stdout, context).toBe('')
  const lines = result.stderr.split('\n')
  const errorLines = lines.filter((line) => line.startsWith('Error: '))
  expect(errorLines, context).toHaveLength(1)
  const message = errorLines[0]!.slice('Error: '.length)
  if (typeof expected.message === 'string') expect(message, context).toContain(expected.message)
  else expect(message, context).toMatch(expected.message)
  const hintLines = lines.filter((line) => line.startsWith('Hint: '))
  if (expected.hint !== undefined) {
    expect(hintLines, context).toHaveLength(1)
    const hint = hintLines[0]!.slice('Hint: '.length)
    if (typeof expected.hint === 'string') expect(hint, context).toContain(expected.hint)
    else expect(hint, context).toMatch(expected.hint)
  }
  // The hint, if any, is the line right after the error: one message, one hint, together.
  const at = lines.indexOf(errorLines[0]!)
  if (hintLines.length > 0) expect(lines[at + 1], context).toMatch(/^Hint: /)
  if (!result.stderr.includes('debug ')) expect(result.stderr, context).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
}

/** Every secret the sandbox knows: none may ever reach a terminal outside of what `password` prints on purpose. */
export function sandboxSecrets(sandbox: Sandbox, extra: string[] = []): string[] {
  const keyLines = sandbox.userKey.privateKey
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'))
  return [sandbox.password, sandbox.token, sandbox.basicUser.password, ...keyLines, ...extra]
}

export function expectNoSecrets(text: string, secrets: string[]): void {
  for (const secret of secrets) {
    if (text.includes(secret)) {
      throw new Error(`a secret (${secret.slice(0, 4)}…) was printed:\n${text}`)
    }
  }
}
