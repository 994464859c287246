/**
 * Drives the real kubectl and OpenSSH clients against a sandbox, for the fidelity tests: whatever they accept and
 * print is what they would accept and print against a real cluster, or the sandbox is wrong.
 *
 * Every kubectl gets its own `--cache-dir` (discovery and the dispatcher's server-version cache), so no test sees
 * another's cache, and a private HOME. Long-running children (port-forward) are tracked and killed by `killAll()`.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Terminal } from '../helpers/cli.js'
import { knownHostsLine } from '../sandbox/keys.js'

/** The gcloud dispatcher: it asks the server for /version and runs the matching kubectl (1.27–1.33). */
export const KUBECTL = '/usr/bin/kubectl'
export const versionedKubectl = (minor: number) => `/usr/lib/google-cloud-sdk/bin/kubectl.1.${minor}`

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  stdoutBuffer: Buffer
}

export interface KubectlOptions {
  /** Extra environment (KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false, …). */
  env?: NodeJS.ProcessEnv
  input?: string | Buffer
  timeoutMs?: number
  /** The binary (default: the dispatcher). */
  binary?: string
  /** A cache dir to share between calls (default: a fresh one per call). */
  cacheDir?: string
}

/** A scratch folder for one test file; `cleanup()` removes it. */
export class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), 'akm-fidelity-'))
  private readonly children = new Set<ChildProcess>()
  private readonly terminals = new Set<Terminal>()

  /** A fresh, empty cache dir for kubectl. */
  cacheDir(): string {
    return mkdtempSync(join(this.dir, 'cache-'))
  }

  /** A clean environment: a private HOME, no proxy, no color, nothing inherited but PATH. */
  env(kubeconfig: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: mkdtempSync(join(this.dir, 'home-')),
      LANG: 'C.UTF-8',
      KUBECONFIG: kubeconfig,
      NO_PROXY: '*',
      ...extra,
    }
  }

  /** Runs kubectl on pipes to completion. */
  kubectl(kubeconfig: string, args: string[], options: KubectlOptions = {}): Promise<RunResult> {
    const cacheDir = options.cacheDir ?? this.cacheDir()
    return this.run(options.binary ?? KUBECTL, ['--cache-dir', cacheDir, ...args], {
      env: this.env(kubeconfig, options.env),
      ...(options.input === undefined ? {} : { input: options.input }),
      timeoutMs: options.timeoutMs ?? 25_000,
    })
  }

  /** Runs a program on pipes to completion (killed after the timeout). */
  run(
    file: string,
    args: string[],
    options: { env: NodeJS.ProcessEnv; input?: string | Buffer; timeoutMs?: number },
  ): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, { env: options.env, stdio: ['pipe', 'pipe', 'pipe'] })
      this.children.add(child)
      const out: Buffer[] = []
      const err: Buffer[] = []
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk))
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk))
      const timer = setTimeout(() => {
        child.kill('SIGKILL')
        reject(
          new Error(
            `${file} ${args.join(' ')} did not finish in ${options.timeoutMs ?? 25_000} ms; stderr: ${Buffer.concat(err)}`,
          ),
        )
      }, options.timeoutMs ?? 25_000)
      child.on('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        this.children.delete(child)
        const stdoutBuffer = Buffer.concat(out)
        resolve({
          code,
          signal,
          stdout: stdoutBuffer.toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
          stdoutBuffer,
        })
      })
      child.stdin.on('error', () => {}) // a program may exit without reading all its input
      child.stdin.end(options.input ?? '')
    })
  }

  /** Starts a long-running kubectl (port-forward, get -w) on pipes; killAll() ends it. */
  start(kubeconfig: string, args: string[], options: { env?: NodeJS.ProcessEnv; binary?: string } = {}): Background {
    const child = spawn(options.binary ?? KUBECTL, ['--cache-dir', this.cacheDir(), ...args], {
      env: this.env(kubeconfig, options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.children.add(child)
    child.once('exit', () => this.children.delete(child))
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
    })
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    const waitFor = async (pattern: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> => {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const match = pattern.exec(stdout)
        if (match) return match
        if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
          throw new Error(`kubectl ${args.join(' ')}: no ${pattern} (exit ${child.exitCode}): ${stdout}${stderr}`)
        }
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    }
    return { child, stdout: () => stdout, output: () => stdout + stderr, exited, waitFor }
  }

  /**
   * Starts `kubectl port-forward <resource> :<port>` and resolves once it prints
   * `Forwarding from 127.0.0.1:<local> -> <port>`, with the local port.
   */
  async portForward(
    kubeconfig: string,
    resource: string,
    remotePort: number,
    options: { env?: NodeJS.ProcessEnv; binary?: string } = {},
  ): Promise<PortForward> {
    const background = this.start(kubeconfig, ['port-forward', resource, `:${remotePort}`], options)
    try {
      const match = await background.waitFor(new RegExp(`Forwarding from 127\\.0\\.0\\.1:(\\d+) -> ${remotePort}`))
      return { ...background, localPort: Number(match[1]) }
    } catch (error) {
      background.child.kill('SIGKILL')
      throw error
    }
  }

  /** A program in a real pseudo-terminal (killed by killAll). */
  terminal(argv: string[], env: NodeJS.ProcessEnv, size?: { cols: number; rows: number }): Terminal {
    const terminal = new Terminal(argv, env, size)
    this.terminals.add(terminal)
    return terminal
  }

  /**
   * A known_hosts file that trusts `hostPublicKey` for 127.0.0.1:port only, so that `StrictHostKeyChecking=yes`
   * proves the pod's sshd presented the sandbox's host key.
   */
  knownHosts(port: number, hostPublicKey: string): string {
    const file = join(mkdtempSync(join(this.dir, 'ssh-')), 'known_hosts')
    writeFileSync(file, `${knownHostsLine('127.0.0.1', port, hostPublicKey)}\n`, { mode: 0o600 })
    return file
  }

  /**
   * OpenSSH logging in as akamas@127.0.0.1:port with a key, in batch mode, trusting only `hostPublicKey` there (so a
   * login proves the pod's sshd presented that key), and running `command`.
   */
  sshWithKey(
    kubeconfig: string,
    port: number,
    login: { keyFile: string; hostPublicKey: string },
    command: string,
    options: string[] = [],
  ): Promise<RunResult> {
    const knownHosts = this.knownHosts(port, login.hostPublicKey)
    return this.run(
      'ssh',
      [
        ...sshOptions(port, knownHosts),
        '-i',
        login.keyFile,
        ...options,
        '-o',
        'BatchMode=yes',
        'akamas@127.0.0.1',
        command,
      ],
      { env: this.env(kubeconfig) },
    )
  }

  /** An SSH_ASKPASS program printing a password kept in a 0600 file beside it. */
  askpass(password: string): string {
    const dir = mkdtempSync(join(this.dir, 'askpass-'))
    const passwordFile = join(dir, 'password')
    writeFileSync(passwordFile, password, { mode: 0o600 })
    const script = join(dir, 'askpass')
    writeFileSync(script, `#!/bin/sh\nexec cat '${passwordFile}'\n`, { mode: 0o700 })
    return script
  }

  /** Kills every child and terminal still running, and waits for them to go. */
  async killAll(): Promise<void> {
    for (const terminal of this.terminals) terminal.kill()
    const waits = [...this.terminals].map((terminal) => terminal.process.exited.catch(() => undefined))
    this.terminals.clear()
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) {
        waits.push(new Promise((resolve) => child.once('exit', resolve)))
        child.kill('SIGKILL')
      }
    }
    this.children.clear()
    await Promise.all(waits)
  }

  async cleanup(): Promise<void> {
    await this.killAll()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

export interface Background {
  child: ChildProcess
  stdout: () => string
  /** stdout then stderr. */
  output: () => string
  exited: Promise<number | null>
  /** Waits until stdout matches (fails if kubectl exits first). */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>
}

export interface PortForward extends Background {
  localPort: number
}

/** The options every OpenSSH client in these tests gets: no config files, strict host key checking. */
export function sshOptions(port: number, knownHostsFile: string): string[] {
  return [
    '-F',
    '/dev/null',
    '-p',
    String(port),
    '-o',
    `UserKnownHostsFile=${knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'ConnectTimeout=10',
    '-o',
    'LogLevel=ERROR',
  ]
}

/** Splits kubectl's column output into rows of cells (two or more spaces separate the columns). */
export function tableRows(text: string): string[][] {
  return text
    .trimEnd()
    .split('\n')
    .map((line) => line.trim().split(/\s{2,}/))
}
