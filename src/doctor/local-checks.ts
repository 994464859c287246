/**
 * The user's side of the chain: the terminal sessions run in, the known_hosts file host keys are kept in, the local
 * port `ssh` opens its tunnel on, and the Node.js that runs akm-access. Independent of the cluster: they run at once.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname } from 'node:path'
import { ExitCode } from '../errors.js'
import { displayPath } from '../kube/kubeconfig.js'
import { colorEnabled, type Io } from '../terminal/io.js'
import { supportsUnicode } from './report.js'
import type { CheckOutcome } from './types.js'

/** package.json's engines. */
export const minimumNode = [20, 17] as const

export function checkTerminal(io: Io): CheckOutcome {
  const env = io.env
  const tty = (stream: { isTTY?: boolean }) => (stream.isTTY ? 'a terminal' : 'not a terminal')
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG
  const utf8 = supportsUnicode(env)
  const lines = [
    `stdin is ${tty(io.stdin)}, stdout is ${tty(io.stdout)}`,
    io.stdout.isTTY && io.stdout.columns
      ? `${io.stdout.columns}x${io.stdout.rows ?? '?'}, TERM=${env.TERM ?? '(unset)'}`
      : `TERM=${env.TERM ?? '(unset)'}`,
    `${locale ? `locale ${locale}` : 'no locale'}${utf8 ? '' : ' (not UTF-8)'}, colors ${colorEnabled(env, Boolean(io.stdout.isTTY)) ? 'on' : 'off'}${env.NO_COLOR ? ' (NO_COLOR)' : ''}`,
  ]
  const interactive = Boolean(io.stdin.isTTY && io.stdout.isTTY)
  if (interactive && !utf8 && env.TERM !== 'dumb') {
    return {
      status: 'warn',
      detail: lines.join('\n'),
      hint: 'the management pod writes UTF-8: set a UTF-8 locale (e.g. export LANG=C.UTF-8) or accented text will be garbled',
    }
  }
  return { status: 'pass', detail: lines.join('\n') }
}

/** The file can be read, and a new host key can be added to it (or it can be created). */
export function checkKnownHosts(file: string, homeDir: string | undefined): CheckOutcome {
  const shown = displayPath(file, homeDir)
  const unusable = (why: string): CheckOutcome => ({
    status: 'fail',
    detail: `${shown} ${why}`,
    hint: 'akm-access keeps the host keys it trusts there: fix the path or its permissions, or pass --known-hosts FILE',
    exitCode: ExitCode.local,
  })
  let text: string | undefined
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EISDIR') return unusable('is a folder, not a file')
    if (code === 'ENOTDIR') return unusable(`cannot exist: ${blockingFile(file) ?? 'a part of its path'} is a file`)
    if (code !== 'ENOENT') return unusable(`cannot be read: ${(error as Error).message}`)
  }
  if (text === undefined) {
    const existing = nearestExisting(dirname(file))
    if (!existing.isDirectory) return unusable(`cannot be created: ${existing.path} is not a folder`)
    if (!writable(existing.path)) return unusable(`cannot be created: ${existing.path} is not writable`)
    return { status: 'pass', detail: `${shown} does not exist yet; the first host key you trust creates it` }
  }
  const keys = text.split('\n').filter((line) => line.trim() && !line.trim().startsWith('#')).length
  const detail = `${shown}: ${keys === 1 ? '1 host key' : `${keys} host keys`}`
  if (!writable(file)) {
    return {
      status: 'warn',
      detail: `${detail}; it is read-only`,
      hint: 'new host keys cannot be stored there: make it writable, or pass --known-hosts FILE',
    }
  }
  return { status: 'pass', detail }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK)
    return true
  } catch {
    return false
  }
}

function nearestExisting(path: string): { path: string; isDirectory: boolean } {
  for (let current = path; ; current = dirname(current)) {
    try {
      return { path: current, isDirectory: statSync(current).isDirectory() }
    } catch {
      if (dirname(current) === current) return { path: current, isDirectory: false }
    }
  }
}

function blockingFile(file: string): string | undefined {
  for (let current = dirname(file); dirname(current) !== current; current = dirname(current)) {
    try {
      if (!statSync(current).isDirectory()) return current
    } catch {
      // missing: keep going up
    }
  }
  return undefined
}

/** Can `ssh`'s tunnel listen on its preferred port? A busy port is only a warning: it falls back to a free one. */
export async function checkLocalPort(port: number): Promise<CheckOutcome> {
  if (port === 0) return { status: 'pass', detail: 'any free port (--port 0)' }
  const server = createServer()
  const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once('error', (failure: NodeJS.ErrnoException) => resolve(failure))
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => resolve(undefined))
  })
  await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))
  if (!error) return { status: 'pass', detail: `127.0.0.1:${port} is free for akm-access ssh's tunnel` }
  if (error.code === 'EADDRINUSE') {
    return {
      status: 'warn',
      detail: `127.0.0.1:${port} is in use (another tunnel, or kubectl port-forward?): akm-access ssh will take another port`,
      hint: `see what holds it with: lsof -nP -iTCP:${port} -sTCP:LISTEN (or ss -ltnp); choose another with --port`,
    }
  }
  return {
    status: 'warn',
    detail: `cannot listen on 127.0.0.1:${port}: ${error.code ?? error.message}`,
    hint: 'choose another port with --port (ports below 1024 need privileges)',
  }
}

export function checkNode(version: string = process.versions.node): CheckOutcome {
  const [major = 0, minor = 0] = version.split('.').map(Number)
  const [needMajor, needMinor] = minimumNode
  const detail = `Node.js v${version} on ${process.platform}/${process.arch}`
  if (major > needMajor || (major === needMajor && minor >= needMinor)) return { status: 'pass', detail }
  return {
    status: 'fail',
    detail: `${detail}; akm-access needs v${needMajor}.${needMinor} or later`,
    hint: 'install a current Node.js LTS (https://nodejs.org), then reinstall akm-access',
    exitCode: ExitCode.local,
  }
}
