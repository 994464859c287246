/**
 * Questions for a person, asked only when one is there: the one place that imports @inquirer/prompts (lazily, it
 * costs ~150 ms), always on stderr so stdout stays clean for data. Every question has a flag, so scripts never
 * block; Ctrl-C at a prompt is a quiet cancel (exit 130).
 */
import { AccessError, ExitCode, UserCancelled } from '../errors.js'
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

export function createPrompter(io: Io): Prompter {
  const context = { input: io.stdin, output: io.stderr, clearPromptOnDone: false }
  const ask = async <T>(run: (prompts: typeof import('@inquirer/prompts')) => Promise<T>): Promise<T> => {
    if (!io.interactive) {
      throw new AccessError('a question needs an answer, but there is no terminal to ask it on', {
        exitCode: ExitCode.usage,
        hint: 'pass the answer as a flag (see --help)',
      })
    }
    const prompts = await import('@inquirer/prompts')
    try {
      return await run(prompts)
    } catch (error) {
      if (error instanceof Error && (error.name === 'ExitPromptError' || error.name === 'AbortPromptError')) {
        throw new UserCancelled()
      }
      throw error
    }
  }
  return {
    canPrompt: io.interactive,
    select: (message, choices) =>
      ask((prompts) =>
        prompts.select(
          {
            message,
            choices: choices.map((c) => ({ value: c.value, name: c.label, description: c.description })),
          },
          context,
        ),
      ),
    confirm: (message, defaultAnswer) =>
      ask((prompts) => prompts.confirm({ message, default: defaultAnswer }, context)),
    secret: (message) => ask((prompts) => prompts.password({ message, mask: true }, context)),
  }
}
