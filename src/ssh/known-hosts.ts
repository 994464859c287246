/**
 * Host keys in OpenSSH's known_hosts format, in a file of our own, under a stable alias per cluster, namespace and
 * workload — not `[localhost]:PORT`, so that a new local port or a new pod of the same installation is not a new
 * host, and OpenSSH itself can read the file (ssh-config writes `HostKeyAlias` and `UserKnownHostsFile`).
 */
import { createHash, createHmac } from 'node:crypto'
import { appendFileSync, chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { AccessError, ExitCode } from '../errors.js'

/** `~/.config/akm-access/known_hosts`, or under $XDG_CONFIG_HOME. */
export function defaultKnownHostsPath(env: NodeJS.ProcessEnv, homeDir: string): string {
  const base = env.XDG_CONFIG_HOME || join(homeDir, '.config')
  return join(base, 'akm-access', 'known_hosts')
}

/** The alias a host key is stored under, e.g. `akm/127.0.0.1-6443/akamas/management-pod`. */
export function hostKeyAlias(server: string, namespace: string, workload: string): string {
  const url = new URL(server)
  const port = url.port || (url.protocol === 'http:' ? '80' : '443')
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const name = workload.replace(/^[A-Za-z]+\//, '')
  // Only characters that a known_hosts host field and ssh's HostKeyAlias take literally.
  return ['akm', `${host}-${port}${url.pathname === '/' ? '' : url.pathname}`, namespace, name]
    .join('/')
    .replace(/[^A-Za-z0-9._/-]/g, '_')
}

/** The key type inside an SSH public key blob (its first string), e.g. `ssh-ed25519`. */
export function keyType(blob: Buffer): string {
  const length = blob.readUInt32BE(0)
  return blob.subarray(4, 4 + length).toString('latin1')
}

/** OpenSSH's fingerprint: `SHA256:` and the unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`
}

/** How OpenSSH names a key type in its messages: ED25519, RSA, ECDSA. */
export function keyTypeLabel(type: string): string {
  if (type === 'ssh-ed25519') return 'ED25519'
  if (type === 'ssh-rsa' || type.startsWith('rsa-')) return 'RSA'
  if (type.startsWith('ecdsa-')) return 'ECDSA'
  if (type === 'ssh-dss') return 'DSA'
  return type.toUpperCase()
}

export type HostKeyCheck =
  | { status: 'known' }
  | { status: 'unknown' }
  /** The alias is known with another key of the same type: a changed host key. */
  | { status: 'changed'; line: number; knownType: string }

interface Entry {
  line: number
  hosts: string
  type: string
  key: string
}

/** What is wrong with a local file, in words (for messages): "it is a folder", "permission denied". */
export function fileProblem(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code
  const reasons: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EISDIR: 'it is a folder',
    ENOTDIR: 'a part of the path is not a folder',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'the file system is read-only',
    ENOSPC: 'no space left on the disk',
  }
  return (code && reasons[code]) || (error as Error)?.message || String(error)
}

/** A known_hosts file we cannot use is the user's to fix (a path that is a folder, permissions), not a bug. */
function knownHostsError(file: string, doing: 'read' | 'write', error: unknown): AccessError {
  return new AccessError(`cannot ${doing} the known_hosts file ${file}: ${fileProblem(error)}`, {
    exitCode: ExitCode.local,
    hint: '--known-hosts names a file (default: ~/.config/akm-access/known_hosts); check its path and permissions',
    cause: error,
  })
}

function readEntries(file: string): Entry[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw knownHostsError(file, 'read', error)
  }
  const entries: Entry[] = []
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim()
    if (!line || line.startsWith('#')) return
    let fields = line.split(/\s+/)
    // Markers (@cert-authority, @revoked) are OpenSSH features we do not write; skip those lines.
    if (fields[0]?.startsWith('@')) return
    fields = fields.slice(0, 3)
    if (fields.length < 3) return
    entries.push({ line: index + 1, hosts: fields[0]!, type: fields[1]!, key: fields[2]! })
  })
  return entries
}

function hostMatches(hosts: string, alias: string): boolean {
  if (hosts.startsWith('|1|')) {
    // A hashed entry (HashKnownHosts): |1|base64(salt)|base64(HMAC-SHA1(salt, host)).
    const [, , salt, hash] = hosts.split('|')
    if (!salt || !hash) return false
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(alias).digest('base64') === hash
  }
  return hosts.split(',').some((pattern) => pattern === alias)
}

export function checkHostKey(file: string, alias: string, blob: Buffer): HostKeyCheck {
  const type = keyType(blob)
  const key = blob.toString('base64')
  const entries = readEntries(file).filter((entry) => hostMatches(entry.hosts, alias))
  if (entries.some((entry) => entry.type === type && entry.key === key)) return { status: 'known' }
  // Like OpenSSH, a different key of the same type is a change; a key of another type alone is not trusted either.
  const changed = entries.find((entry) => entry.type === type) ?? entries[0]
  return changed ? { status: 'changed', line: changed.line, knownType: changed.type } : { status: 'unknown' }
}

export function addHostKey(file: string, alias: string, blob: Buffer): void {
  try {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
    appendFileSync(file, `${alias} ${keyType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 })
    chmodSync(file, 0o600)
  } catch (error) {
    throw knownHostsError(file, 'write', error)
  }
}

/** Removes every key stored for the alias (as `ssh-keygen -R`); returns how many lines went. */
export function removeHostKey(file: string, alias: string): number {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0
    throw knownHostsError(file, 'read', error)
  }
  const lines = text.split('\n')
  const kept = lines.filter((raw) => {
    const hosts = raw.trim().split(/\s+/)[0] ?? ''
    return raw.trim().startsWith('#') || !hosts || !hostMatches(hosts, alias)
  })
  const removed = lines.length - kept.length
  if (removed > 0) writeFileSync(file, kept.join('\n'), { mode: 0o600 })
  return removed
}

/** OpenSSH's warning for a changed host key, word for word where it applies. */
export function changedHostKeyWarning(options: {
  alias: string
  blob: Buffer
  file: string
  line: number
  knownType: string
}): string {
  const type = keyTypeLabel(keyType(options.blob))
  return [
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
    '@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @',
    '@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@',
    'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!',
    'Someone could be eavesdropping on you right now (man-in-the-middle attack)!',
    'It is also possible that a host key has just been changed.',
    `The fingerprint for the ${type} key sent by the remote host is`,
    `${fingerprint(options.blob)}.`,
    'Please contact your system administrator.',
    `Add correct host key in ${options.file} to get rid of this message.`,
    `Offending ${keyTypeLabel(options.knownType)} key in ${options.file}:${options.line}`,
    '  remove with:',
    `  ssh-keygen -f '${options.file}' -R '${options.alias}'`,
    `Host key for ${options.alias} has changed and you have requested strict checking.`,
    '',
  ].join('\n')
}
