import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  addHostKey,
  changedHostKeyWarning,
  checkHostKey,
  fingerprint,
  hostKeyAlias,
  keyType,
  removeHostKey,
} from '../../src/ssh/known-hosts.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'akm-known-hosts-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** A real host key made by ssh-keygen, as the blob ssh2 hands to hostVerifier. */
function hostKey(name: string): { blob: Buffer; fingerprint: string } {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, name)])
  const line = readFileSync(join(dir, `${name}.pub`), 'utf8')
  const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', join(dir, `${name}.pub`)], {
    encoding: 'utf8',
  })
  return { blob: Buffer.from(line.split(' ')[1]!, 'base64'), fingerprint: printed.split(' ')[1]! }
}

describe('known_hosts', () => {
  it('computes the same SHA256 fingerprint as ssh-keygen', () => {
    const key = hostKey('a')
    expect(fingerprint(key.blob)).toBe(key.fingerprint)
    expect(keyType(key.blob)).toBe('ssh-ed25519')
  })

  it('stores under a stable alias that OpenSSH can look up', () => {
    const alias = hostKeyAlias('https://127.0.0.1:6443', 'akamas', 'Deployment/management-pod')
    expect(alias).toBe('akm/127.0.0.1-6443/akamas/management-pod')
    const file = join(dir, 'cfg', 'known_hosts')
    const key = hostKey('b')
    expect(checkHostKey(file, alias, key.blob)).toEqual({ status: 'unknown' })
    addHostKey(file, alias, key.blob)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(checkHostKey(file, alias, key.blob)).toEqual({ status: 'known' })
    // OpenSSH agrees: ssh-keygen -F finds the alias in our file.
    const found = execFileSync('ssh-keygen', ['-F', alias, '-f', file], { encoding: 'utf8' })
    expect(found).toContain(alias)
  })

  it('reports a changed key with its line, and OpenSSH warning text', () => {
    const file = join(dir, 'known_hosts')
    const alias = 'akm/example-443/akamas/management-pod'
    const old = hostKey('old')
    const fresh = hostKey('new')
    addHostKey(file, alias, old.blob)
    const check = checkHostKey(file, alias, fresh.blob)
    expect(check).toEqual({ status: 'changed', line: 1, knownType: 'ssh-ed25519' })
    const warning = changedHostKeyWarning({ alias, blob: fresh.blob, file, line: 1, knownType: 'ssh-ed25519' })
    expect(warning).toContain('WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!')
    expect(warning).toContain(fresh.fingerprint)
    expect(warning).toContain(`ssh-keygen -f '${file}' -R '${alias}'`)
    expect(removeHostKey(file, alias)).toBe(1)
    expect(checkHostKey(file, alias, fresh.blob)).toEqual({ status: 'unknown' })
  })

  it('matches hashed entries written by ssh-keygen -H', () => {
    const file = join(dir, 'hashed')
    const alias = 'akm/h-443/ns/w'
    const key = hostKey('h')
    addHostKey(file, alias, key.blob)
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' })
    expect(readFileSync(file, 'utf8').startsWith('|1|')).toBe(true)
    expect(checkHostKey(file, alias, key.blob)).toEqual({ status: 'known' })
  })
})
