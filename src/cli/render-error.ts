import { AccessError, ExitCode, RemoteExit, toError, UserCancelled } from '../errors.js'
import { redact } from '../redact.js'

export interface RenderedError {
  /** What goes to stderr, already redacted; empty when the failure is silent (a remote exit status, Ctrl-C). */
  text: string
  exitCode: number
  json: { error: { message: string; hint?: string; exitCode: number; name: string } } | undefined
}

interface OclifError {
  oclif?: { exit?: number }
  parse?: unknown
}

/**
 * The one place where anything thrown becomes what the user sees: a one-line message, a hint, an exit code.
 * Stacks only with --debug. Every string goes through `redact`, so no secret can leak through an error.
 */
export function renderError(thrown: unknown, options: { debug: boolean; color: boolean }): RenderedError {
  if (thrown instanceof RemoteExit) return { text: '', exitCode: thrown.exitCode, json: undefined }
  const error = toError(thrown)
  let message: string
  let hint: string | undefined
  let exitCode: number
  if (error instanceof AccessError) {
    message = error.message
    hint = error.hint
    exitCode = error.exitCode
    // Cancelled by the user, or by a signal (130, 143, 129): they know why; nothing to add.
    if (error instanceof UserCancelled || exitCode === ExitCode.cancelled)
      return { text: '', exitCode, json: undefined }
  } else if (isOclifUsageError(error)) {
    message = usageMessage(error.message)
    hint = 'run the command with --help to see its flags and arguments'
    exitCode = ExitCode.usage
  } else {
    message = firstLine(error.message) || error.name
    hint = 'this looks like a bug in akm-access; rerun with --debug and report the output'
    exitCode = ExitCode.internal
  }
  message = redact(message)
  hint = hint === undefined ? undefined : redact(hint)
  const paint = (code: string, text: string) => (options.color ? `\u001b[${code}m${text}\u001b[0m` : text)
  let text = `${paint('31;1', 'Error:')} ${message}\n`
  if (hint) text += `${paint('2', 'Hint:')} ${hint}\n`
  if (options.debug) text += redact(describeChain(error))
  return {
    text,
    exitCode,
    json: { error: { message, ...(hint ? { hint } : {}), exitCode, name: error.name } },
  }
}

function isOclifUsageError(error: Error): boolean {
  const oclif = (error as OclifError).oclif
  return Boolean((error as OclifError).parse) || oclif?.exit === 2 || error.name === 'NonExistentFlagsError'
}

/**
 * oclif's parser errors span several lines (the flag list, "See more help with --help"): keep the first, except
 * for flag constraints (--key with --key-file, --force without --key-file), whose first line is only a header
 * ("The following error occurred:") and whose reasons follow, dimmed.
 */
function usageMessage(text: string): string {
  const lines = text
    .replace(/\u001b\[[0-9;]*m/g, '')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
  if (/^The following errors? occurred:$/.test(lines[0] ?? '')) {
    const reasons = lines.slice(1).filter((line) => !line.startsWith('See more help'))
    if (reasons.length > 0) return reasons.join('; ')
  }
  // "Parsing --port" alone does not say what is wrong; the next line does ("Expected an integer less than…").
  if (/^Parsing --\S+$/.test(lines[0] ?? '') && lines[1] && !lines[1].startsWith('See more help')) {
    return `${lines[0]}: ${lines[1]}`
  }
  return lines[0] ?? ''
}

function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((line) => line.trim())
      .find(Boolean) ?? ''
  )
}

function describeChain(error: Error): string {
  let text = ''
  let current: unknown = error
  for (let depth = 0; current instanceof Error && depth < 5; depth++) {
    text += `${depth === 0 ? '' : 'Caused by: '}${current.stack ?? current.message}\n`
    current = current.cause
  }
  return text
}
