/**
 * OpenSSH's connection multiplexing, driven from outside: is a master listening on a ControlPath, start one (ssh
 * -M -N -f) with a given environment, and a lock so that several ssh processes starting at once (VS Code opens a
 * few) make a single master. The master is a real OpenSSH client: once it has authenticated, every ssh, scp, sftp
 * and rsync for the host reuses its connection without authenticating again.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { dirname } from 'node:path'
import { AccessError, ExitCode } from '../errors.js'

/** PROTOCOL.mux: a master greets each client with MUX_MSG_HELLO (0x00000001) first. */
const muxHello = 0x00000001

/** True when an ssh master answers on `controlPath` (not merely a socket file left by a dead one). */
export function isMasterAlive(controlPath: string, timeoutMs = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0)
    const socket = createConnection(controlPath)
    const done = (alive: boolean) => {
      socket.destroy()
      resolve(alive)
    }
    socket.setTimeout(timeoutMs, () => done(false))
    socket.on('error', () => done(false))
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length >= 8) done(received.readUInt32BE(4) === muxHello)
    })
    socket.on('close', () => resolve(false))
  })
}

export interface MasterStart {
  /** `-o` options (as `hostOptions` renders them). */
  options: [string, string][]
  host: string
  controlPath: string
  /** How long the master stays up without clients, as ssh's ControlPersist (e.g. `15m`). */
  persist: string
  /** Its whole environment (ours plus the askpass variables). */
  env: NodeJS.ProcessEnv
  /** ssh's messages go here (replaced at each start). */
  logFile: string
  /** The ssh binary (default: ssh on PATH). */
  ssh?: string
  signal?: AbortSignal
}

export type MasterResult = { ok: true } | { ok: false; exitCode: number | null; log: string }

/**
 * Starts a master and resolves once it has authenticated and gone to the background (`-f`), or has failed. `-F none`:
 * the user's config is not read, so nothing in it (a `Match exec` of ours included) runs again inside the master.
 */
export async function startMaster(start: MasterStart): Promise<MasterResult> {
  mkdirSync(dirname(start.logFile), { recursive: true, mode: 0o700 })
  const log = openSync(start.logFile, 'w', 0o600)
  try {
    const args = ['-F', 'none', '-M', '-N', '-f', '-o', 'ControlMaster=yes', '-o', `ControlPath=${start.controlPath}`]
    args.push('-o', `ControlPersist=${start.persist}`, '-o', 'NumberOfPasswordPrompts=1', '-o', 'BatchMode=no')
    for (const [key, value] of start.options) args.push('-o', `${key}=${value}`)
    args.push(start.host)
    const child = spawn(start.ssh ?? 'ssh', args, {
      env: start.env,
      // The master outlives us: it must not hold our stdout (ssh's Match exec waits for it) or stdin.
      stdio: ['ignore', 'ignore', log],
      ...(start.signal ? { signal: start.signal } : {}),
    })
    // 'exit', not 'close': after -f the background master keeps the log descriptor open.
    const exitCode = await new Promise<number | null>((resolve) => {
      child.once('error', () => resolve(null))
      child.once('exit', (code) => resolve(code))
    })
    if (exitCode === 0 && (await isMasterAlive(start.controlPath))) return { ok: true }
    return { ok: false, exitCode, log: readFileSync(start.logFile, 'utf8').trim() }
  } finally {
    closeSync(log)
  }
}

/**
 * An exclusive lock file next to the control socket, holding our pid. A lock whose process is gone is taken over.
 * Resolves with a release function, or undefined if `ready()` became true while waiting (someone else's master).
 */
export async function lockMaster(
  lockFile: string,
  ready: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<(() => void) | undefined> {
  const deadline = Date.now() + timeoutMs
  mkdirSync(dirname(lockFile), { recursive: true, mode: 0o700 })
  for (;;) {
    try {
      writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      return () => rmSync(lockFile, { force: true })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    const holder = readOr(lockFile, undefined)
    if (holder === undefined) continue
    // An empty file is a lock being written this instant, not a stale one.
    if (holder !== '' && !processAlive(Number.parseInt(holder, 10))) {
      rmSync(lockFile, { force: true })
      continue
    }
    if (await ready()) return undefined
    if (Date.now() > deadline) {
      throw new AccessError(`another akm-access has been starting the master connection for a minute (${lockFile})`, {
        exitCode: ExitCode.local,
        hint: `if no akm-access is running, remove ${lockFile}`,
      })
    }
    await new Promise((resolve) => setTimeout(resolve, 150))
  }
}

function readOr<T>(file: string, fallback: T): string | T {
  try {
    return readFileSync(file, 'utf8')
  } catch {
    return fallback
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
