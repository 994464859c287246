/**
 * The pod's sshd: Debian's real OpenSSH server, run with a config of our own (never /etc/ssh/sshd_config),
 * listening on a free loopback port that stands for the pod's port 22 — or, for the Docker sandbox's containers, on
 * port 22 itself at an address of the 127.0.0.0/8 loopback range that is the container's own (`pickAddress`).
 *
 * This module knows sshd (its config, how it starts, when it is ready); the pod runtime decides where it runs
 * (it hands in a `spawnAsRoot` that enters the pod's namespaces).
 */
import type { ChildProcess, StdioOptions } from 'node:child_process'
import { once } from 'node:events'
import { access, constants, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const SSHD_BINARY = '/usr/sbin/sshd'
/** sshd's compiled-in privilege separation folder (Debian): it must exist and be root's, or sshd won't start. */
export const SSHD_PRIVSEP_DIR = '/run/sshd'

const LOOPBACK = '127.0.0.1'
const BIND_ATTEMPTS = 5
const READY_TIMEOUT_MS = 10_000
const POLL_INTERVAL_MS = 10

/** The files of one pod's sshd, all in the pod's stateDir. */
export interface SshdPaths {
  config: string
  authorizedKeys: string
  pid: string
  log: string
}

export function sshdPaths(stateDir: string): SshdPaths {
  return {
    config: join(stateDir, 'sshd_config'),
    authorizedKeys: join(stateDir, 'sshd.authorizedKeys'),
    pid: join(stateDir, 'sshd.pid'),
    log: join(stateDir, 'sshd.log'),
  }
}

export interface SshdConfigOptions {
  port: number
  /** The address to listen on (default 127.0.0.1). */
  address?: string
  hostKeyPath: string
  paths: SshdPaths
  /** The only account allowed to log in. */
  user: string
  passwordAuthentication: boolean
}

/** Renders the sshd_config for one pod. */
export function renderSshdConfig(options: SshdConfigOptions): string {
  const { port, hostKeyPath, paths, user, passwordAuthentication } = options
  return [
    '# Written by the akm-access sandbox for one pod; /etc/ssh/sshd_config is not read.',
    `ListenAddress ${options.address ?? LOOPBACK}:${port}`,
    `HostKey ${configPath(hostKeyPath)}`,
    `PidFile ${configPath(paths.pid)}`,
    'LogLevel VERBOSE',
    // No PAM: accounts and the password hash come from the pod's own passwd/shadow copies.
    'UsePAM no',
    'PermitRootLogin no',
    `AllowUsers ${user}`,
    'PubkeyAuthentication yes',
    // sshd reads an AuthorizedKeysFile as the user, so the file and every folder above it would have to be open
    // to the pod's user; a command run as root reads the same file wherever the stateDir is.
    'AuthorizedKeysFile none',
    `AuthorizedKeysCommand /bin/cat ${configPath(paths.authorizedKeys)}`,
    'AuthorizedKeysCommandUser root',
    `PasswordAuthentication ${passwordAuthentication ? 'yes' : 'no'}`,
    'PermitEmptyPasswords no',
    'KbdInteractiveAuthentication no',
    // StrictModes checks the modes of the user's home and files in it; the pod's home is a host folder whose modes
    // the tests don't control, and a real pod's /work is a volume with whatever modes it was given.
    'StrictModes no',
    'Subsystem sftp internal-sftp',
    'PrintMotd no',
    'PrintLastLog no',
    'X11Forwarding no',
    '',
  ].join('\n')
}

/** sshd_config splits on blanks and expands %-tokens; sandbox paths are plain, so refuse anything else. */
function configPath(path: string): string {
  if (!/^\/[\w./@+,:=-]*$/.test(path)) {
    throw new Error(`sshd_config cannot carry this path (blanks, quotes, % or #): ${JSON.stringify(path)}`)
  }
  return path
}

export async function assertSshdInstalled(): Promise<void> {
  try {
    await access(SSHD_BINARY, constants.X_OK)
  } catch {
    throw new Error(`OpenSSH sshd not found at ${SSHD_BINARY}: run \`apt-get install -y openssh-server\``)
  }
}

/**
 * Creates sshd's privilege separation folder on the host if it is missing (the openssh-server service would create
 * it at boot). It is shared by every sandbox sshd on the machine, so it is left in place.
 */
export async function ensurePrivsepDir(): Promise<void> {
  await mkdir(SSHD_PRIVSEP_DIR, { recursive: true, mode: 0o755 })
}

export interface SshdStartOptions extends Omit<SshdConfigOptions, 'port' | 'address'> {
  authorizedKeys: readonly string[]
  /** Starts `argv` as root inside the pod (stdin ignored; stdout and stderr as given). */
  spawnAsRoot(argv: string[], stdio: StdioOptions): ChildProcess
  /** Picks the port to try (default: findFreePort); called again after a failed bind. */
  pickPort?: () => Promise<number>
  /** Picks the address to listen on (default: 127.0.0.1); called again after a failed bind. */
  pickAddress?: () => string
}

/** A running sshd. */
export interface RunningSshd {
  readonly port: number
  /** The address it listens on. */
  readonly address: string
  readonly process: ChildProcess
}

/**
 * Starts sshd on a free port and resolves once it accepts connections. The free port comes from binding port 0;
 * another process may take it before sshd binds, so a failed bind is retried on a new port.
 */
export async function startSshd(options: SshdStartOptions): Promise<RunningSshd> {
  const { paths } = options
  await writeFile(paths.authorizedKeys, options.authorizedKeys.map((key) => `${key.trim()}\n`).join(''), {
    mode: 0o600,
  })
  let lastError: Error | undefined
  for (let attempt = 1; attempt <= BIND_ATTEMPTS; attempt++) {
    const port = await (options.pickPort ?? findFreePort)()
    const address = options.pickAddress?.() ?? LOOPBACK
    await writeFile(paths.config, renderSshdConfig({ ...options, port, address }), { mode: 0o600 })
    await rm(paths.pid, { force: true })
    const started = await launchAndAwaitReady(options, address, port)
    if (started.ok) return { port, address, process: started.process }
    lastError = started.error
    if (!started.portTaken) break
  }
  throw lastError ?? new Error('sshd did not start')
}

type LaunchResult = { ok: true; process: ChildProcess } | { ok: false; error: Error; portTaken: boolean }

async function launchAndAwaitReady(options: SshdStartOptions, address: string, port: number): Promise<LaunchResult> {
  const { paths } = options
  const log = await open(paths.log, 'a')
  let child: ChildProcess
  try {
    // -D: stay in the foreground (our child, so we reap it); -e: log to stderr, which goes to the log file.
    child = options.spawnAsRoot([SSHD_BINARY, '-D', '-e', '-f', paths.config], ['ignore', log.fd, log.fd])
  } finally {
    await log.close()
  }
  let spawnError: Error | undefined
  child.once('error', (error) => {
    spawnError = error
  })
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (spawnError) return { ok: false, error: spawnError, portTaken: false }
    if (child.exitCode !== null || child.signalCode !== null) return exitedEarly(child, paths.log)
    if (await isListening(child, paths.pid, address, port)) return { ok: true, process: child }
    await sleep(POLL_INTERVAL_MS)
  }
  child.kill('SIGKILL')
  return {
    ok: false,
    error: new Error(`sshd did not listen on ${address}:${port} in ${READY_TIMEOUT_MS} ms`),
    portTaken: false,
  }
}

async function exitedEarly(child: ChildProcess, logPath: string): Promise<LaunchResult> {
  const logText = await readFile(logPath, 'utf8').catch(() => '')
  const tail = logText.trim().split('\n').slice(-5).join('\n')
  const how = child.exitCode === null ? `signal ${child.signalCode}` : `code ${child.exitCode}`
  const error = new Error(`sshd exited (${how}) before listening; the end of ${logPath}:\n${tail}`)
  return { ok: false, error, portTaken: /Address already in use|Cannot bind any address/.test(tail) }
}

/**
 * sshd writes its PidFile only after it has bound its listen address, so a PidFile naming our child means the port
 * is ours (not a neighbour's that won the race for it); the banner then proves that it answers.
 */
async function isListening(child: ChildProcess, pidPath: string, address: string, port: number): Promise<boolean> {
  const pid = Number.parseInt(await readFile(pidPath, 'utf8').catch(() => ''), 10)
  return pid === child.pid && (await readsSshBanner(address, port))
}

/** Connects and waits for the `SSH-2.0-` identification line. */
async function readsSshBanner(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: address, port })
    let received = ''
    const finish = (result: boolean) => {
      socket.destroy()
      resolve(result)
    }
    socket.setTimeout(2_000, () => finish(false))
    socket.on('error', () => finish(false))
    socket.on('end', () => finish(false))
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1')
      if (received.includes('\n')) finish(received.startsWith('SSH-2.0-'))
    })
  })
}

/** A loopback port that was free a moment ago (the kernel's pick for port 0). */
export async function findFreePort(): Promise<number> {
  const server = createServer()
  server.listen(0, LOOPBACK)
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (address === null || typeof address === 'string') throw new Error('no TCP address for a port-0 listener')
  return address.port
}
