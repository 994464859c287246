import { execFileSync } from 'node:child_process'
import { createPublicKey } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { afterAll, describe, expect, it } from 'vitest'
import { preparePrivateKey } from '../../src/ssh/ssh-client.js'

const dir = mkdtempSync(join(tmpdir(), 'akm-keys-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

function opensslKey(name: string, args: string[]): string {
  execFileSync('openssl', ['genpkey', ...args, '-out', join(dir, name)], { stdio: 'ignore' })
  return readFileSync(join(dir, name), 'utf8')
}

function sshKeygen(name: string, passphrase: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', join(dir, name)])
  return readFileSync(join(dir, name), 'utf8')
}

/** The public half as ssh2 sees it, to prove a conversion kept the same key. */
function publicBlob(key: string, passphrase?: string): string {
  const parsed = ssh2.utils.parseKey(key, passphrase)
  if (parsed instanceof Error) throw parsed
  return parsed.getPublicSSH().toString('base64')
}

describe('preparePrivateKey', () => {
  it('passes OpenSSH keys through', async () => {
    const key = sshKeygen('plain', '')
    expect(await preparePrivateKey(key, undefined)).toEqual({ ok: true, key })
  })

  it('tells an encrypted key without passphrase, and a wrong passphrase', async () => {
    const key = sshKeygen('encrypted', 'correct horse')
    expect(await preparePrivateKey(key, undefined)).toMatchObject({ ok: false, reason: 'needs-passphrase' })
    expect(await preparePrivateKey(key, 'wrong')).toMatchObject({ ok: false, reason: 'bad-passphrase' })
    expect(await preparePrivateKey(key, 'correct horse')).toMatchObject({ ok: true })
  })

  it.each([
    ['ed25519', ['-algorithm', 'ed25519']],
    ['rsa', ['-algorithm', 'rsa', '-pkeyopt', 'rsa_keygen_bits:2048']],
    ['ec', ['-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
  ])('converts a PKCS#8 %s key that ssh2 cannot read into one it can', async (name, args) => {
    const pkcs8 = opensslKey(`${name}.pem`, args)
    expect(pkcs8).toContain('BEGIN PRIVATE KEY')
    expect(ssh2.utils.parseKey(pkcs8)).toBeInstanceOf(Error)
    const result = await preparePrivateKey(pkcs8, undefined)
    if (!result.ok) throw new Error(result.message)
    // The same key: its public half matches the original's.
    if (name === 'ed25519') {
      const { x } = createPublicKey(pkcs8).export({ format: 'jwk' }) as { x: string }
      expect(Buffer.from(publicBlob(result.key), 'base64').subarray(-32)).toEqual(Buffer.from(x, 'base64url'))
    } else {
      const fromOpenssh = execFileSync('ssh-keygen', ['-y', '-f', join(dir, `${name}.pem`)], { encoding: 'utf8' })
      expect(publicBlob(result.key)).toBe(fromOpenssh.trim().split(' ')[1])
    }
  })

  it('reports garbage as unusable', async () => {
    const result = await preparePrivateKey(
      '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n',
      undefined,
    )
    expect(result).toMatchObject({ ok: false, reason: 'unusable' })
  })
})
