/**
 * Questions for a person, asked only when one is there: the one place that imports @inquirer/prompts (lazily, it
 * costs ~150 ms), always on stderr so stdout stays clean for data. Every question has a flag, so scripts never
 * block; Ctrl-C at a prompt is a quiet cancel (exit 130).
 */
import { AccessError, ExitCode, Interrupted, UserCancelled } from '../errors.js'
import type { Io } from './io.js'

export interface Choice {
  value: string
  label: string
  description?: string
}

export interface Prompter {
  /** True when a person can answer (stdin and stderr are terminals). */
  readonly canPrompt: boolean
  select(message: string, choices: Choice[]): Promise<string>
  confirm(message: string, defaultAnswer: boolean): Promise<boolean>
  secret(message: string): Promise<string>
}

/** Signals that end a question: the prompt is aborted (which restores the terminal), then we exit 128+n. */
const promptSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

type PromptContext = { input: Io['stdin']; output: Io['stderr']; clearPromptOnDone: boolean; signal: AbortSignal }

export function createPrompter(io: Io): Prompter {
  const ask = async <T>(
    run: (prompts: typeof import('@inquirer/prompts'), context: PromptContext) => Promise<T>,
  ): Promise<T> => {
    if (!io.interactive) {
      throw new AccessError('a question needs an answer, but there is no terminal to ask it on', {
        exitCode: ExitCode.usage,
        hint: 'pass the answer as a flag (see --help)',
      })
    }
    const prompts = await import('@inquirer/prompts')
    // inquirer's signal-exit re-raises SIGTERM/SIGHUP (and a SIGINT sent by kill) when no one else listens, which
    // kills the process with the terminal still in raw mode. Listening ourselves turns the signal into an aborted
    // prompt instead: inquirer then restores the terminal, and we exit 128+n.
    const aborter = new AbortController()
    let received: NodeJS.Signals | undefined
    const onSignal = (signal: NodeJS.Signals) => {
      received ??= signal
      aborter.abort()
    }
    for (const signal of promptSignals) process.on(signal, onSignal)
    try {
      return await run(prompts, {
        input: io.stdin,
        output: io.stderr,
        clearPromptOnDone: false,
        signal: aborter.signal,
      })
    } catch (error) {
      if (received) throw new Interrupted(received)
      if (error instanceof Error && (error.name === 'ExitPromptError' || error.name === 'AbortPromptError')) {
        throw new UserCancelled()
      }
      throw error
    } finally {
      for (const signal of promptSignals) process.off(signal, onSignal)
    }
  }
  return {
    canPrompt: io.interactive,
    select: (message, choices) =>
      ask((prompts, context) =>
        prompts.select(
          {
            message,
            choices: choices.map((c) => ({ value: c.value, name: c.label, description: c.description })),
          },
          context,
        ),
      ),
    confirm: (message, defaultAnswer) =>
      ask((prompts, context) => prompts.confirm({ message, default: defaultAnswer }, context)),
    secret: (message) => ask((prompts, context) => prompts.password({ message, mask: true }, context)),
  }
}
