/**
 * Side-by-side measurement: every case of a figure runs in the same process and the same minutes, alternating A, B,
 * A, B… after a warm-up, so that the load of a shared machine falls on all of them alike. Ratios, not absolute
 * times, are what the benchmark reports.
 */
import { spawn } from 'node:child_process'
import { Terminal } from '../../test/helpers/cli.js'

export interface Case {
  name: string
  /** The exact command, for the report. */
  command: string
  /** Runs once and returns the measured milliseconds (or another unit, per figure). */
  run: () => Promise<number>
}

export interface Stats {
  median: number
  min: number
  max: number
  runs: number
}

export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  const median = sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, runs: sorted.length }
}

export async function alternate(cases: Case[], options: { warmup: number; runs: number }): Promise<Map<string, Stats>> {
  for (let i = 0; i < options.warmup; i++) for (const c of cases) await c.run()
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]))
  for (let i = 0; i < options.runs; i++) {
    // Alternate the order too, so that neither case always runs right after the other.
    const order = i % 2 === 0 ? cases : [...cases].reverse()
    for (const c of order) samples.get(c.name)!.push(await c.run())
  }
  return new Map([...samples].map(([name, values]) => [name, stats(values)]))
}

/** Wall time of a process from spawn to exit (it must exit 0). */
export function timeProcess(argv: string[], env: NodeJS.ProcessEnv, shell = false): () => Promise<number> {
  return () =>
    new Promise((resolve, reject) => {
      const start = performance.now()
      const child = shell
        ? spawn('sh', ['-c', argv.join(' ')], { env, stdio: ['ignore', 'ignore', 'pipe'] })
        : spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString()
      })
      child.on('error', reject)
      child.on('exit', (code) => {
        const elapsed = performance.now() - start
        if (code === 0) resolve(elapsed)
        else reject(new Error(`${argv.join(' ')} exited ${code}: ${stderr}`))
      })
    })
}

/** Time from spawning a program in a real terminal until its output matches `prompt`; then it is killed. */
export function timeToPrompt(
  argv: string[],
  env: NodeJS.ProcessEnv,
  prompt: RegExp,
  options: { answer?: { when: RegExp; type: string } } = {},
): () => Promise<number> {
  return async () => {
    const start = performance.now()
    const terminal = new Terminal(argv, env)
    try {
      if (options.answer) {
        await terminal.waitFor(options.answer.when, { timeoutMs: 30_000 })
        terminal.type(options.answer.type)
      }
      await terminal.waitFor(prompt, { timeoutMs: 30_000 })
      return performance.now() - start
    } finally {
      terminal.kill()
      await terminal.process.exited.catch(() => {})
    }
  }
}

/**
 * Median round trip of a line typed into an interactive session running `cat` (the terminal echoes it, cat
 * writes it back): what a person feels when typing.
 */
export async function echoRoundTrip(
  argv: string[],
  env: NodeJS.ProcessEnv,
  prompt: RegExp,
  lines = 60,
): Promise<Stats> {
  const terminal = new Terminal(argv, env)
  try {
    await terminal.waitFor(prompt, { timeoutMs: 30_000 })
    terminal.type('stty -echo; cat\r')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const samples: number[] = []
    for (let i = 0; i < lines; i++) {
      const token = `echo-${i}-${Math.random().toString(36).slice(2)}`
      const from = terminal.output.length
      const start = performance.now()
      terminal.type(`${token}\r`)
      await terminal.waitFor(token, { from, timeoutMs: 10_000 })
      samples.push(performance.now() - start)
    }
    return stats(samples.slice(5))
  } finally {
    terminal.kill()
    await terminal.process.exited.catch(() => {})
  }
}
