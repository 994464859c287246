/**
 * Runs the built CLI the way a person does: on pipes (for scripts and data), or in a real pseudo-terminal (for
 * interactive sessions), against a sandbox. Tests never import the commands: they run bin/run.js.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { PodProcess } from '../sandbox/contracts.js'
import { startPodProcess } from '../sandbox/pod-process.js'

export const repoRoot = resolve(import.meta.dirname, '..', '..')
export const cliPath = join(repoRoot, 'bin', 'run.js')

export function assertBuilt(): void {
  if (!existsSync(join(repoRoot, 'dist', 'commands')) || !existsSync(join(repoRoot, 'oclif.manifest.json'))) {
    throw new Error('the CLI is not built: run `npm run build` first (npm test does it)')
  }
}

/** A clean environment for the CLI: its own HOME (known_hosts, config), the sandbox's kubeconfig, no color. */
export function cliEnv(kubeconfig: string | undefined, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const home = mkdtempSync(join(tmpdir(), 'akm-home-'))
  return {
    PATH: process.env.PATH,
    HOME: home,
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
    ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
    ...extra,
  }
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  stdoutBuffer: Buffer
}

export interface RunOptions {
  env: NodeJS.ProcessEnv
  input?: string | Buffer
  timeoutMs?: number
}

/** Runs the CLI on pipes (not a terminal) and collects everything. */
export function runCli(args: string[], options: RunOptions): Promise<CliResult> {
  assertBuilt()
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: options.env, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(
          `akm-access ${args.join(' ')} did not finish in ${options.timeoutMs ?? 20_000} ms; stderr: ${Buffer.concat(err)}`,
        ),
      )
    }, options.timeoutMs ?? 20_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stdoutBuffer = Buffer.concat(out)
      resolvePromise({
        code,
        signal,
        stdout: stdoutBuffer.toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        stdoutBuffer,
      })
    })
    child.stdin.on('error', () => {})
    if (options.input !== undefined) child.stdin.end(options.input)
    else child.stdin.end()
  })
}

/** A program running in a real pseudo-terminal, driven like a person at a keyboard. */
export class Terminal {
  private text = ''
  readonly process: PodProcess

  constructor(command: string[], env: NodeJS.ProcessEnv, size = { cols: 100, rows: 30 }) {
    this.process = startPodProcess(command, { tty: true, cols: size.cols, rows: size.rows }, env)
    this.process.stdout.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('utf8')
    })
  }

  /** Everything the terminal has shown so far. */
  get output(): string {
    return this.text
  }

  type(text: string): void {
    this.process.stdin.write(text)
  }

  resize(cols: number, rows: number): void {
    this.process.resize(cols, rows)
  }

  /** Waits until the output (after `from`) matches, or fails with what was shown. Checks on every chunk. */
  waitFor(pattern: RegExp | string, options: { timeoutMs?: number; from?: number } = {}): Promise<string> {
    const matches = () => {
      const text = this.text.slice(options.from ?? 0)
      return typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text)
    }
    if (matches()) return Promise.resolve(this.text)
    return new Promise((resolve, reject) => {
      const onData = () => {
        // The text is appended by an earlier listener, so it already holds this chunk.
        if (!matches()) return
        cleanup()
        resolve(this.text)
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(
          new Error(
            `timed out waiting for ${pattern}; the terminal showed:\n${JSON.stringify(this.text.slice(-2000))}`,
          ),
        )
      }, options.timeoutMs ?? 15_000)
      const cleanup = () => {
        clearTimeout(timer)
        this.process.stdout.off('data', onData)
      }
      this.process.stdout.on('data', onData)
    })
  }

  async exit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(`the program did not exit; the terminal showed:\n${JSON.stringify(this.text.slice(-2000))}`),
          ),
        timeoutMs,
      )
    })
    try {
      return await Promise.race([this.process.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  kill(): void {
    this.process.kill('SIGKILL')
  }
}

/** The CLI in a terminal. */
export function cliInTerminal(args: string[], env: NodeJS.ProcessEnv, size?: { cols: number; rows: number }): Terminal {
  assertBuilt()
  return new Terminal([process.execPath, cliPath, ...args], env, size)
}

/**
 * The CLI in a terminal, run by a shell that afterwards prints its exit status and the terminal's modes: what a
 * person would see after akm-access ends, to check that raw mode was undone.
 */
export function cliInTerminalReportingModes(args: string[], env: NodeJS.ProcessEnv): Terminal {
  assertBuilt()
  const quoted = [process.execPath, cliPath, ...args].map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ')
  return new Terminal(
    ['bash', '--norc', '--noprofile', '-c', `${quoted}; echo "exit=$?"; stty -a; echo modes-done`],
    env,
  )
}

/** After cliInTerminalReportingModes: the exit status, and whether the terminal is back in canonical mode with echo. */
export function reportedExit(output: string): { code: number; restored: boolean } {
  const code = Number(/exit=(\d+)/.exec(output)?.[1] ?? Number.NaN)
  const modes = output.slice(output.lastIndexOf('exit='))
  const restored =
    /(^|\s)icanon(\s|$)/m.test(modes) && /(^|\s)echo(\s|$)/m.test(modes) && !/-icanon|-echo\s/.test(modes)
  return { code, restored }
}
