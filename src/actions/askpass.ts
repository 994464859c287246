/**
 * `akm-access askpass PROMPT` (hidden): what OpenSSH runs as SSH_ASKPASS for the master connection of a password
 * installation. It asks the akm-access process that started that ssh (see src/ssh/askpass.ts) and prints the
 * answer on stdout for ssh; without an answer it exits 1, which ssh takes as "no".
 */
import { requestAnswer } from '../ssh/askpass.js'
import type { Io } from '../terminal/io.js'

export async function runAskpass(prompt: string, io: Pick<Io, 'env' | 'stdout' | 'stderr'>): Promise<number> {
  const answer = await requestAnswer(io.env, prompt)
  if (answer === undefined) {
    io.stderr.write(`akm-access askpass: no answer for "${prompt.trim()}"\n`)
    return 1
  }
  await new Promise<void>((resolve) => io.stdout.write(answer, () => resolve()))
  return 0
}
