/**
 * What the reliability suites check around every run of the built CLI, besides its exit code and message:
 *
 *  - nothing is left behind: each run carries a marker in its environment (AKM_RELIABILITY_RUN), which every
 *    process it starts inherits, so after the run no live process may carry it; its TMPDIR (a fresh folder) must
 *    be empty and its HOME may hold only what akm-access keeps on purpose;
 *  - every listening socket of the run's processes is on loopback (read from /proc/net/tcp{,6} and their fds);
 *  - no secret is in any of its processes' argv or environment, nor in a file it wrote.
 *
 * Processes are found by that marker in /proc/PID/environ (the suites run as root, which may read them all), not
 * by name: other suites run the CLI at the same time on the same machine.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { expect } from 'vitest'
import { assertBuilt, cliEnv, cliPath, Terminal } from '../helpers/cli.js'
import type { Sandbox } from '../sandbox/index.js'

export const MARKER = 'AKM_RELIABILITY_RUN'

/** An environment for one run: its own HOME, TMPDIR and marker (see above). */
export interface RunEnv {
  env: NodeJS.ProcessEnv
  home: string
  tmp: string
  marker: string
}

export function runEnv(kubeconfig: string | undefined, extra: NodeJS.ProcessEnv = {}): RunEnv {
  const marker = randomUUID()
  const tmp = mkdtempSync(join(tmpdir(), 'akm-rel-tmp-'))
  const env = cliEnv(kubeconfig, { TERM: 'xterm-256color', TMPDIR: tmp, [MARKER]: marker, ...extra })
  return { env, home: env.HOME!, tmp, marker }
}

/** The same HOME (known_hosts) for another run, with a fresh marker and TMPDIR. */
export function nextRun(previous: RunEnv, extra: NodeJS.ProcessEnv = {}): RunEnv {
  const marker = randomUUID()
  const tmp = mkdtempSync(join(tmpdir(), 'akm-rel-tmp-'))
  return { env: { ...previous.env, TMPDIR: tmp, [MARKER]: marker, ...extra }, home: previous.home, tmp, marker }
}

// ---- /proc ----

function pids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

export interface ProcInfo {
  pid: number
  argv: string[]
  environ: string[]
}

/** Live processes whose environment holds the marker (zombies have none and are not counted). */
export function processesOf(marker: string): ProcInfo[] {
  const found: ProcInfo[] = []
  for (const pid of pids()) {
    if (pid === process.pid) continue
    const environ = readOr(`/proc/${pid}/environ`)
    if (!environ?.includes(`${MARKER}=${marker}`)) continue
    found.push({ pid, argv: (readOr(`/proc/${pid}/cmdline`) ?? '').split('\0'), environ: environ.split('\0') })
  }
  return found
}

export interface Listener {
  address: string
  port: number
}

/** Sockets in LISTEN state held by these processes (TCP over IPv4 and IPv6). */
export function listenersOf(processIds: number[]): Listener[] {
  const inodes = new Set<string>()
  for (const pid of processIds) {
    let fds: string[] = []
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`)
        const match = /^socket:\[(\d+)\]$/.exec(link)
        if (match) inodes.add(match[1]!)
      } catch {}
    }
  }
  const listeners: Listener[] = []
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    for (const line of (readOr(file) ?? '').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || fields[3] !== '0A' || !inodes.has(fields[9]!)) continue
      const [hex, portHex] = fields[1]!.split(':') as [string, string]
      listeners.push({ address: v6 ? ipv6(hex) : ipv4(hex), port: Number.parseInt(portHex, 16) })
    }
  }
  return listeners
}

function ipv4(hex: string): string {
  // /proc/net/tcp writes the address as a little-endian 32-bit number.
  return [6, 4, 2, 0].map((at) => Number.parseInt(hex.slice(at, at + 2), 16)).join('.')
}

function ipv6(hex: string): string {
  const words: string[] = []
  for (let group = 0; group < 4; group++) {
    const word = hex.slice(group * 8, group * 8 + 8)
    const bytes = [6, 4, 2, 0].map((at) => word.slice(at, at + 2)).join('')
    words.push(bytes.slice(0, 4), bytes.slice(4, 8))
  }
  const text = words.map((word) => word.replace(/^0{1,3}/, '')).join(':')
  if (text === '0:0:0:0:0:0:0:1') return '::1'
  if (text === '0:0:0:0:0:0:0:0') return '::'
  return text
}

export function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(true))
  })
}

// ---- runs ----

/** The built CLI on pipes, long-running or not, with what it printed and how it ended. */
export class CliRun {
  stdout = ''
  stderr = ''
  stdoutBytes = 0
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  private readonly waiters = new Set<() => void>()

  constructor(
    readonly child: ChildProcess,
    readonly run: RunEnv,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => {
      this.stdoutBytes += chunk.length
      // Keep the text short: a transfer test may push hundreds of MiB through stdout.
      if (this.stdout.length < 64 * 1024) this.stdout += chunk.toString('utf8')
      this.wake()
    })
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString('utf8')
      this.wake()
    })
    child.stdin?.on('error', () => {})
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        resolve({ code, signal })
        this.wake()
      })
    })
  }

  get pid(): number {
    return this.child.pid!
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter()
  }

  waitFor(
    pattern: RegExp,
    options: { stream?: 'stdout' | 'stderr'; timeoutMs?: number } = {},
  ): Promise<RegExpExecArray> {
    const stream = options.stream ?? 'stderr'
    return new Promise((resolve, reject) => {
      const check = () => {
        const match = pattern.exec(this[stream])
        if (match) {
          cleanup()
          resolve(match)
        } else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          cleanup()
          reject(new Error(`exited before ${pattern}; stdout: ${this.stdout.slice(0, 500)}\nstderr: ${this.stderr}`))
        }
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(
          new Error(`timed out waiting for ${pattern}; stdout: ${this.stdout.slice(0, 500)}\nstderr: ${this.stderr}`),
        )
      }, options.timeoutMs ?? 20_000)
      const cleanup = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  /** How it ended, as a shell reports it: the exit code, or 128+n for a death by signal n. */
  async status(timeoutMs = 20_000): Promise<number> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`akm-access did not exit in ${timeoutMs} ms; stderr: ${this.stderr}`)),
        timeoutMs,
      )
    })
    try {
      return shellStatus(await Promise.race([this.exited, timeout]))
    } finally {
      clearTimeout(timer)
    }
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal)
  }
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }

export function shellStatus(end: { code: number | null; signal: NodeJS.Signals | null }): number {
  if (end.code !== null) return end.code
  return 128 + (signalNumbers[end.signal!] ?? 0)
}

/** Starts the CLI on pipes; `input` is written and stdin ended unless `keepStdin`. */
export function startCli(
  args: string[],
  run: RunEnv,
  options: { input?: string | Buffer; keepStdin?: boolean } = {},
): CliRun {
  assertBuilt()
  const child = spawn(process.execPath, [cliPath, ...args], { env: run.env, stdio: ['pipe', 'pipe', 'pipe'] })
  const started = new CliRun(child, run)
  if (options.input !== undefined) child.stdin!.end(options.input)
  else if (!options.keepStdin) child.stdin!.end()
  return started
}

/** Runs the CLI to its end; returns the run (with stdout, stderr) and its status as a shell reports it. */
export async function runToEnd(
  args: string[],
  run: RunEnv,
  options: { input?: string | Buffer; timeoutMs?: number } = {},
): Promise<{ status: number; out: CliRun }> {
  const out = startCli(args, run, options.input === undefined ? {} : { input: options.input })
  try {
    return { status: await out.status(options.timeoutMs), out }
  } finally {
    out.kill()
  }
}

/** The CLI in a pseudo-terminal, run by a shell that reports the exit status and terminal modes afterwards. */
export function cliInTerminalWithModes(args: string[], run: RunEnv): Terminal {
  assertBuilt()
  const quoted = [process.execPath, cliPath, ...args].map((arg) => `'${arg.replace(/'/g, `'\\''`)}'`).join(' ')
  return new Terminal(
    ['bash', '--norc', '--noprofile', '-c', `${quoted}; echo "exit=$?"; stty -a; echo modes-done`],
    run.env,
  )
}

/** The CLI's own pid under a terminal started by cliInTerminalWithModes (bash's child carrying the marker). */
export function cliPidIn(run: RunEnv): number | undefined {
  return processesOf(run.marker).find((info) => info.argv.includes(cliPath))?.pid
}

// ---- what must hold after every run ----

/** Files akm-access keeps in HOME on purpose: its known_hosts (and the lock and temp name of its atomic write). */
const keptInHome = [/^\.config\/akm-access\/known_hosts$/]

/** Waits (briefly, by polling /proc: a process that exits has no event to wait on) until nothing carries the marker. */
export async function expectNoProcessLeft(run: RunEnv, withinMs = 3000): Promise<void> {
  const deadline = Date.now() + withinMs
  let left = processesOf(run.marker)
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    left = processesOf(run.marker)
  }
  expect(
    left.map((info) => `${info.pid} ${info.argv.join(' ')}`),
    'processes of the run still alive',
  ).toEqual([])
}

export function filesUnder(root: string): string[] {
  let entries: string[] = []
  try {
    entries = readdirSync(root, { recursive: true }) as string[]
  } catch {
    return []
  }
  return entries.filter((name) => {
    try {
      return statSync(join(root, name)).isFile()
    } catch {
      return false
    }
  })
}

/** No process, no temporary file, nothing unexpected in HOME; `extraHomeFiles` are files the user asked for. */
export async function expectCleanAfter(run: RunEnv, extraHomeFiles: RegExp[] = []): Promise<void> {
  await expectNoProcessLeft(run)
  expect(filesUnder(run.tmp), `files left in TMPDIR ${run.tmp}`).toEqual([])
  const allowed = [...keptInHome, ...extraHomeFiles]
  const unexpected = filesUnder(run.home).filter((name) => !allowed.some((pattern) => pattern.test(name)))
  expect(unexpected, `unexpected files in HOME ${run.home}`).toEqual([])
}

/**
 * An error as the user sees it: exactly one `Error:` line, the `Hint:` line right after it, no stack trace; the
 * exit code from the README. (`stdout` may hold what a remote command printed before the failure.)
 */
export function expectError(
  stderr: string,
  expected: { message: string | RegExp; hint?: string | RegExp; hintRequired?: boolean },
): void {
  const context = `stderr was:\n${stderr}`
  const lines = stderr.split(/\r?\n/)
  const errors = lines.filter((line) => line.startsWith('Error: '))
  expect(errors, context).toHaveLength(1)
  const message = errors[0]!.slice('Error: '.length)
  if (typeof expected.message === 'string') expect(message, context).toContain(expected.message)
  else expect(message, context).toMatch(expected.message)
  const hint = lines[lines.indexOf(errors[0]!) + 1] ?? ''
  if (expected.hintRequired !== false) expect(hint, context).toMatch(/^Hint: \S/)
  if (expected.hint !== undefined) {
    if (typeof expected.hint === 'string') expect(hint, context).toContain(expected.hint)
    else expect(hint, context).toMatch(expected.hint)
  }
  expect(stderr, context).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m)
  expect(stderr, context).not.toMatch(/Unhandled|node:internal|TypeError|ReferenceError/)
}

/** `proxy` speaks to ssh, which shows its stderr inline: one line, `akm-access proxy: message (hint)`. */
export function expectProxyError(stderr: string, message: string | RegExp): void {
  const context = `stderr was:\n${stderr}`
  expect(stderr, context).toMatch(/^akm-access proxy: [^\n]+ \([^\n]+\)\n$/)
  if (typeof message === 'string') expect(stderr, context).toContain(message)
  else expect(stderr, context).toMatch(message)
}

// ---- secrets ----

/** The secrets a sandbox holds, as they would appear if leaked: the password, the API token, each key line. */
export function secretsOf(sandbox: Sandbox): string[] {
  const keyLines = sandbox.userKey.privateKey
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'))
  return [sandbox.password, sandbox.token, ...keyLines]
}

export interface Leak {
  where: string
  secret: string
}

function leaksIn(text: string, secrets: string[], where: string): Leak[] {
  return secrets
    .filter((secret) => text.includes(secret))
    .map((secret) => ({ where, secret: `${secret.slice(0, 4)}…` }))
}

/** Secrets in the argv or environment of any process of the run. */
export function processLeaks(run: RunEnv, secrets: string[]): Leak[] {
  return processesOf(run.marker).flatMap((info) => [
    ...leaksIn(info.argv.join(' '), secrets, `argv of ${info.pid} (${info.argv[1] ?? info.argv[0]})`),
    ...leaksIn(info.environ.join('\n'), secrets, `environment of ${info.pid} (${info.argv[1] ?? info.argv[0]})`),
  ])
}

/** Secrets in files under these folders, except `allowed` files (which must then be mode 0600). */
export function fileLeaks(roots: string[], secrets: string[], allowed: string[] = []): Leak[] {
  const leaks: Leak[] = []
  for (const root of roots) {
    for (const name of filesUnder(root)) {
      const path = join(root, name)
      const found = leaksIn(readOr(path) ?? '', secrets, `file ${relative(root, path)} in ${root}`)
      if (found.length === 0) continue
      if (allowed.includes(path)) {
        const mode = statSync(path).mode & 0o777
        if (mode !== 0o600) leaks.push({ where: `${path} (mode ${mode.toString(8)}, not 0600)`, secret: '' })
        continue
      }
      leaks.push(...found)
    }
  }
  return leaks
}

export function textLeaks(text: string, secrets: string[], where: string): Leak[] {
  return leaksIn(text, secrets, where)
}
