/**
 * SSH keys for the sandbox, made by the real `ssh-keygen`: the pod's host key and the users' keys that the CLI's
 * tests log in with (OpenSSH ed25519, or RSA in the old PEM format that some users still have).
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'

export type KeyKind = 'ed25519' | 'rsa-pem'

export interface KeyPair {
  /** The private key file (mode 0600, as ssh-keygen writes it); the public key is beside it, at `<path>.pub`. */
  path: string
  /** The private key as ssh-keygen wrote it: OpenSSH format, or PKCS#1 PEM for 'rsa-pem'. */
  privateKey: string
  /** The public key as one authorized_keys line (`type base64 comment`), without a trailing newline. */
  publicKey: string
}

export interface KeyOptions {
  /** Protects the private key (default: none). Test data only: it is passed to ssh-keygen on its command line. */
  passphrase?: string
  comment?: string
}

const KEYGEN_TYPE_ARGS: Record<KeyKind, string[]> = {
  ed25519: ['-t', 'ed25519'],
  'rsa-pem': ['-t', 'rsa', '-b', '2048', '-m', 'PEM'],
}

/**
 * Generates a key pair in `dir` (created if missing) as `<name>` and `<name>.pub`, replacing any key already there.
 * Synchronous, so that it fits in constructors: ed25519 takes milliseconds, RSA 2048 a few tenths of a second.
 */
export function generateKeyPair(
  dir: string,
  name: string,
  kind: KeyKind = 'ed25519',
  options: KeyOptions = {},
): KeyPair {
  const { passphrase = '', comment = `akm-access-sandbox-${name}` } = options
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const path = join(dir, name)
  // ssh-keygen asks before overwriting; a fresh key is what callers want.
  rmSync(path, { force: true })
  rmSync(`${path}.pub`, { force: true })
  execFileSync('ssh-keygen', [...KEYGEN_TYPE_ARGS[kind], '-N', passphrase, '-C', comment, '-q', '-f', path], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  return { path, privateKey: readFileSync(path, 'utf8'), publicKey: readFileSync(`${path}.pub`, 'utf8').trim() }
}

/**
 * A known_hosts line that makes OpenSSH (or any client reading known_hosts) trust `hostPublicKey` for host:port.
 * OpenSSH writes non-22 ports as `[host]:port`.
 */
export function knownHostsLine(host: string, port: number, hostPublicKey: string): string {
  const [type, base64] = hostPublicKey.split(/\s+/)
  if (!type || !base64) throw new Error(`not an OpenSSH public key: ${hostPublicKey}`)
  const hostPattern = port === 22 ? host : `[${host}]:${port}`
  return `${hostPattern} ${type} ${base64}`
}
