/**
 * The real OpenSSH clients (ssh, scp, sftp, rsync) and long-running akm-access commands (forward), driven from
 * tests: spawn, wait for output by event (no polling), collect, and kill whatever is left.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { assertBuilt, cliPath } from './cli.js'

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

export interface ProcessResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv
  input?: Buffer | string
  timeoutMs?: number
  cwd?: string
}

/** Runs a program to its end and collects everything; rejects only if it cannot start or outlives the timeout. */
export function run(command: string, args: string[], options: RunOptions = {}): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd ? { cwd: options.cwd } : {}),
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(
        new Error(
          `${command} ${args.join(' ')} did not finish in ${options.timeoutMs ?? 30_000} ms: ${Buffer.concat(err)}`,
        ),
      )
    }, options.timeoutMs ?? 30_000)
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(options.input ?? '')
  })
}

/** A long-running program whose output tests wait on. */
export class Running {
  stdout = ''
  stderr = ''
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private readonly waiters = new Set<() => void>()

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8')
    child.stderr?.setEncoding('utf8')
    child.stdout?.on('data', (chunk: string) => {
      this.stdout += chunk
      this.wake()
    })
    child.stderr?.on('data', (chunk: string) => {
      this.stderr += chunk
      this.wake()
    })
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        resolve({ code, signal })
        this.wake()
      })
    })
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  /** Resolves with the match once stdout or stderr (after `from` characters) matches; fails after the timeout. */
  waitFor(
    pattern: RegExp,
    options: { stream?: 'stdout' | 'stderr'; from?: number; timeoutMs?: number } = {},
  ): Promise<RegExpExecArray> {
    const stream = options.stream ?? 'stderr'
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(this[stream].slice(options.from ?? 0))
        if (match) {
          cleanup()
          resolve(match)
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          cleanup()
          reject(new Error(`exited before ${pattern}; stdout: ${this.stdout}\nstderr: ${this.stderr}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`timed out waiting for ${pattern}; stdout: ${this.stdout}\nstderr: ${this.stderr}`))
      }, options.timeoutMs ?? 20_000)
      const cleanup = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }
}

/** The built CLI, long-running (forward, proxy), on pipes; stdin stays open only when asked. */
export function startCli(args: string[], env: NodeJS.ProcessEnv, options: { stdin?: boolean } = {}): Running {
  assertBuilt()
  return new Running(
    spawn(process.execPath, [cliPath, ...args], { env, stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] }),
  )
}

/** Any program, long-running, with stdin open (e.g. an ssh session that stays up). */
export function startProgram(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Running {
  return new Running(spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] }))
}

/** ssh options that trust only akm-access's known_hosts entry, non-interactively. */
export function strictHostKeyOptions(knownHosts: string, alias: string): string[] {
  return [
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${knownHosts}`,
    '-o',
    `HostKeyAlias=${alias}`,
    '-o',
    'LogLevel=ERROR',
  ]
}

export interface EchoRound {
  /** How many sessions were open at the same time at the peak. */
  peak: number
  /** Hostnames the sessions reported (the pod that served them). */
  hosts: Set<string>
  failures: string[]
}

/**
 * `count` ssh sessions through `port`, all open at once: each starts `cat` in the pod, and only when every session
 * is up does each send `bytes` random bytes and check that the same bytes (by SHA-256) come back. Handshakes run
 * at most `handshakes` at a time: sshd drops unauthenticated connections beyond its MaxStartups (10).
 */
export async function concurrentEchoSessions(options: {
  count: number
  bytes: number
  port: number
  sshOptions: string[]
  handshakes?: number
  env?: NodeJS.ProcessEnv
}): Promise<EchoRound> {
  const { count } = options
  const children: ChildProcess[] = []
  const failures: string[] = []
  const hosts = new Set<string>()
  let open = 0
  let failedEarly = 0
  let peak = 0
  let allOpen: () => void = () => {}
  const everyoneOpen = new Promise<void>((resolve) => {
    allOpen = resolve
  })
  let slots = options.handshakes ?? 8
  const queue: (() => void)[] = []
  const acquire = () =>
    new Promise<void>((resolve) => {
      if (slots > 0) {
        slots--
        resolve()
      } else queue.push(resolve)
    })
  const release = () => {
    const next = queue.shift()
    if (next) next()
    else slots++
  }

  const session = async (index: number): Promise<void> => {
    await acquire()
    const payload = randomBytes(options.bytes)
    const child = spawn(
      'ssh',
      [
        '-F',
        'none',
        '-p',
        String(options.port),
        ...options.sshOptions,
        'akamas@127.0.0.1',
        // Say which pod answers, then echo stdin until EOF.
        'echo "ready $(hostname)"; exec cat',
      ],
      { env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] },
    )
    children.push(child)
    let output = Buffer.alloc(0)
    let stderr = ''
    let header: string | undefined
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8')
    })
    child.stdin.on('error', () => {})
    const done = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
    const ready = new Promise<boolean>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        output = Buffer.concat([output, chunk])
        if (header === undefined) {
          const newline = output.indexOf(10)
          if (newline < 0) return
          header = output.subarray(0, newline).toString('utf8')
          output = output.subarray(newline + 1)
          resolve(true)
        }
      })
      void done.then(() => resolve(false))
    })
    const up = await ready
    release()
    if (!up) {
      failures.push(`session ${index} never opened (exit ${await done}): ${stderr.trim()}`)
      if (open + ++failedEarly === count) allOpen()
      return
    }
    hosts.add(header!.replace(/^ready /, ''))
    open++
    peak = Math.max(peak, open)
    if (open + failedEarly === count) allOpen()
    await everyoneOpen
    child.stdin.end(payload)
    const code = await done
    if (code !== 0) failures.push(`session ${index} exited ${code}: ${stderr.trim()}`)
    else if (sha256(output) !== sha256(payload)) {
      failures.push(`session ${index}: ${output.length} bytes came back for ${payload.length} sent, or different ones`)
    }
  }

  try {
    await Promise.all(Array.from({ length: count }, (_, index) => session(index)))
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  }
  return { peak, hosts, failures }
}
