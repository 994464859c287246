/**
 * Credentials Secrets as they are found in the wild: bad base64, empty values, truncated or encrypted keys, PKCS#8,
 * keys pasted with literal `\n` or CRLF, public keys where the private one should be. Each Secret gets its own name
 * (the command names it with --secret), so the cases do not disturb each other. Broken ones must be refused with
 * exit 12 (11 for a missing Secret) and a message naming the Secret and key; usable ones must log in (exit 0).
 */
import { execFileSync } from 'node:child_process'
import { createPrivateKey } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Sandbox } from '../../sandbox/index.js'

export interface SecretCase {
  name: string
  /** The Secret's values as plain strings, and values stored as they are (already "base64"). */
  data: (
    sandbox: Sandbox,
    keys: DerivedKeys,
  ) => { data?: Record<string, string>; rawData?: Record<string, string>; type?: string }
  /** The command after `--secret NAME` is added: `password`, or `ssh` to prove a key is usable. */
  command: 'password' | 'ssh'
  /** Extra flags (e.g. --passphrase-file). */
  flags?: (keys: DerivedKeys) => string[]
  code: number
  message?: RegExp
}

/** The sandbox user's key in the other forms a Secret may hold it in. */
export interface DerivedKeys {
  encrypted: string
  passphraseFile: string
  wrongPassphraseFile: string
  pkcs8: string
  encryptedPkcs8: string
}

export function deriveKeys(sandbox: Sandbox): DerivedKeys {
  const dir = mkdtempSync(join(tmpdir(), 'akm-rel-keys-'))
  const copy = join(dir, 'encrypted')
  writeFileSync(copy, readFileSync(sandbox.userKey.path), { mode: 0o600 })
  execFileSync('ssh-keygen', ['-p', '-q', '-P', '', '-N', 'correct horse', '-f', copy])
  writeFileSync(join(dir, 'passphrase'), 'correct horse\n', { mode: 0o600 })
  writeFileSync(join(dir, 'wrong'), 'battery staple\n', { mode: 0o600 })
  // ssh2 turns an OpenSSH ed25519 key into PKCS#8 PEM; Node encrypts that.
  const { utils } = createRequire(import.meta.url)('ssh2') as typeof import('ssh2')
  const parsed = utils.parseKey(sandbox.userKey.privateKey)
  if (parsed instanceof Error) throw parsed
  const pkcs8 = (Array.isArray(parsed) ? parsed[0]! : parsed).getPrivatePEM()
  const encryptedPkcs8 = createPrivateKey(pkcs8)
    .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'correct horse' })
    .toString()
  return {
    encrypted: readFileSync(copy, 'utf8'),
    passphraseFile: join(dir, 'passphrase'),
    wrongPassphraseFile: join(dir, 'wrong'),
    pkcs8,
    encryptedPkcs8,
  }
}

const half = (text: string) => text.slice(0, Math.floor(text.length / 2))

export const secretCases: SecretCase[] = [
  {
    name: 'a password that is not base64',
    data: () => ({ rawData: { password: 'not*base64*at*all' } }),
    command: 'password',
    code: 12,
    message: /"password" in Secret \S+ is not valid base64/,
  },
  {
    name: 'an empty password and nothing else',
    data: () => ({ data: { password: '' } }),
    command: 'password',
    code: 12,
    message: /password/,
  },
  {
    name: 'no key the credentials are usually under',
    data: () => ({ data: { username: 'akamas', note: 'nothing useful' } }),
    command: 'password',
    code: 12,
    message: /username, note|password/,
  },
  {
    name: 'a private key that is not base64',
    data: () => ({ rawData: { 'ssh-privatekey': '-----BEGIN ***' }, type: 'kubernetes.io/ssh-auth' }),
    command: 'ssh',
    code: 12,
    message: /"ssh-privatekey" in Secret \S+ is not valid base64/,
  },
  {
    name: 'a private key cut in half',
    data: (sandbox) => ({ data: { 'ssh-privatekey': half(sandbox.userKey.privateKey) } }),
    command: 'ssh',
    code: 12,
    message: /"ssh-privatekey" in Secret \S+ is not a PEM or OpenSSH private key|cannot be used/,
  },
  {
    name: 'a private key whose body is garbage',
    data: () => ({
      data: {
        'ssh-privatekey':
          '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END OPENSSH PRIVATE KEY-----\n',
      },
    }),
    command: 'ssh',
    code: 12,
    message: /private key in Secret \S+ cannot be used/,
  },
  {
    name: 'a public key where the private key should be',
    data: (sandbox) => ({ data: { 'ssh-privatekey': sandbox.userKey.publicKey } }),
    command: 'ssh',
    code: 12,
    message: /not a PEM or OpenSSH private key/,
  },
  {
    name: 'a passphrase-protected key, no terminal to ask',
    data: (_sandbox, keys) => ({ data: { 'ssh-privatekey': keys.encrypted } }),
    command: 'ssh',
    code: 12,
    message: /private key in Secret \S+ is encrypted/,
  },
  {
    name: 'a passphrase-protected key with the wrong --passphrase-file',
    data: (_sandbox, keys) => ({ data: { 'ssh-privatekey': keys.encrypted } }),
    command: 'ssh',
    flags: (keys) => ['--passphrase-file', keys.wrongPassphraseFile],
    code: 12,
    message: /passphrase for the private key is wrong/,
  },
  {
    name: 'a passphrase-protected PKCS#8 key, no terminal to ask',
    data: (_sandbox, keys) => ({ data: { 'ssh-privatekey': keys.encryptedPkcs8 } }),
    command: 'ssh',
    code: 12,
    message: /encrypted/,
  },
  {
    name: 'a key field named with --key-field that is not there',
    data: (sandbox) => ({ data: { 'ssh-privatekey': sandbox.userKey.privateKey } }),
    command: 'ssh',
    flags: () => ['--key-field', 'id_nope'],
    code: 12,
    message: /has no key "id_nope" \(it has: ssh-privatekey\)/,
  },
  {
    name: 'an ssh-auth Secret whose key is empty',
    data: () => ({ data: { 'ssh-privatekey': '' }, type: 'kubernetes.io/ssh-auth' }),
    command: 'ssh',
    code: 12,
    message: /ssh-privatekey|no usable/,
  },
  // Usable, however they arrived: these must log in.
  {
    name: 'a passphrase-protected key with the right --passphrase-file (usable)',
    data: (_sandbox, keys) => ({ data: { 'ssh-privatekey': keys.encrypted } }),
    command: 'ssh',
    flags: (keys) => ['--passphrase-file', keys.passphraseFile],
    code: 0,
  },
  {
    name: 'a PKCS#8 key (usable)',
    data: (_sandbox, keys) => ({ data: { 'ssh-privatekey': keys.pkcs8 } }),
    command: 'ssh',
    code: 0,
  },
  {
    name: 'an encrypted PKCS#8 key with the right --passphrase-file (usable)',
    data: (_sandbox, keys) => ({ data: { 'ssh-privatekey': keys.encryptedPkcs8 } }),
    command: 'ssh',
    flags: (keys) => ['--passphrase-file', keys.passphraseFile],
    code: 0,
  },
  {
    name: 'a key pasted with literal \\n (usable)',
    data: (sandbox) => ({ data: { 'ssh-privatekey': sandbox.userKey.privateKey.trim().replace(/\n/g, '\\n') } }),
    command: 'ssh',
    code: 0,
  },
  {
    name: 'a key with CRLF line ends (usable)',
    data: (sandbox) => ({ data: { 'ssh-privatekey': sandbox.userKey.privateKey.replace(/\n/g, '\r\n') } }),
    command: 'ssh',
    code: 0,
  },
  {
    name: 'a key base64-encoded twice (usable)',
    data: (sandbox) => ({ data: { 'ssh-privatekey': Buffer.from(sandbox.userKey.privateKey).toString('base64') } }),
    command: 'ssh',
    code: 0,
  },
  {
    name: 'a password with a trailing newline, as `echo pw | kubectl create secret` leaves it (usable)',
    data: (sandbox) => ({ data: { password: `${sandbox.password}\n` } }),
    command: 'ssh',
    code: 0,
  },
]
