import type { V1Pod, V1Secret } from '@kubernetes/client-node'
import { describe, expect, it } from 'vitest'
import { AccessError, ExitCode } from '../../src/errors.js'
import { redact } from '../../src/redact.js'
import {
  normalizePrivateKey,
  passwordLoginFromPod,
  readSecretCredentials,
  secretReferences,
} from '../../src/target/secret-credentials.js'

const pem =
  '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\nAAAAAAAAAAAAAA\n-----END OPENSSH PRIVATE KEY-----'
const b64 = (text: string) => Buffer.from(text).toString('base64')
const secret = (data: Record<string, string>, type = 'Opaque'): V1Secret => ({
  metadata: { name: 'management-pod' },
  type,
  data,
})

describe('readSecretCredentials', () => {
  it('finds the password and the key by their well-known names', () => {
    const found = readSecretCredentials(secret({ password: b64('s3cr3t-pass\n'), id_rsa: b64(pem) }), {})
    expect(found.password).toBe('s3cr3t-pass')
    expect(found.privateKey).toBe(`${pem}\n`)
    expect(found.passwordField).toBe('password')
    expect(found.privateKeyField).toBe('id_rsa')
  })

  it('reads ssh-privatekey of a kubernetes.io/ssh-auth Secret', () => {
    const found = readSecretCredentials(secret({ 'ssh-privatekey': b64(pem) }, 'kubernetes.io/ssh-auth'), {})
    expect(found.password).toBeUndefined()
    expect(found.privateKeyField).toBe('ssh-privatekey')
  })

  it('takes the fields named by flags, and says which keys exist when one is missing', () => {
    const found = readSecretCredentials(secret({ pw: b64('abc123'), other: b64('x') }), { password: 'pw' })
    expect(found.password).toBe('abc123')
    expect(() => readSecretCredentials(secret({ pw: b64('abc123') }), { password: 'nope' })).toThrow(
      /has no key "nope" \(it has: pw\)/,
    )
  })

  it('rejects malformed base64 with its own exit code', () => {
    try {
      readSecretCredentials(secret({ password: 'not*base64' }), {})
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(AccessError)
      expect((error as AccessError).exitCode).toBe(ExitCode.badCredentials)
      expect((error as AccessError).message).toContain('not valid base64')
    }
  })

  it('prefers the key the pod reads into a password variable, whatever its name', () => {
    const found = readSecretCredentials(secret({ pw: b64('from-pw'), password: b64('from-password') }), {}, [
      { name: 'management-pod', key: 'pw', via: 'env CUSTOM_PASSWORD' },
    ])
    expect(found.password).toBe('from-pw')
    expect(found.passwordField).toBe('pw')
  })

  it('keeps a usable password when the key is broken (and the reverse), saying why the other is not usable', () => {
    const found = readSecretCredentials(secret({ password: b64('good-password'), id_rsa: b64('not a key') }), {})
    expect(found.password).toBe('good-password')
    expect(found.privateKey).toBeUndefined()
    expect(found.unusable.privateKey?.exitCode).toBe(ExitCode.badCredentials)
    const keyOnly = readSecretCredentials(secret({ password: 'not*base64', id_rsa: b64(pem) }), {})
    expect(keyOnly.privateKey).toBe(`${pem}\n`)
    expect(keyOnly.unusable.password?.message).toContain('not valid base64')
  })

  it('tells an empty password from a missing one', () => {
    const found = readSecretCredentials(secret({ password: '' }), {})
    expect(found.password).toBeUndefined()
    expect(found.passwordField).toBe('password')
  })

  it('registers what it read so that no message can show it', () => {
    readSecretCredentials(secret({ password: b64('leaky-password-123') }), {})
    expect(redact('sshd said leaky-password-123 is wrong')).toBe('sshd said [redacted] is wrong')
  })
})

describe('normalizePrivateKey', () => {
  it('repairs literal \\n, CRLF and base64 on top of the PEM', () => {
    expect(normalizePrivateKey(pem.replace(/\n/g, '\\n'), 's', 'k')).toBe(`${pem}\n`)
    expect(normalizePrivateKey(pem.replace(/\n/g, '\r\n'), 's', 'k')).toBe(`${pem}\n`)
    expect(normalizePrivateKey(b64(pem), 's', 'k')).toBe(`${pem}\n`)
  })

  it('rejects what is not a key', () => {
    expect(() => normalizePrivateKey('hello', 's', 'k')).toThrow(/not a PEM or OpenSSH private key/)
    expect(() => normalizePrivateKey('-----BEGIN OPENSSH PRIVATE KEY-----\n', 's', 'k')).toThrow(AccessError)
  })
})

describe('what the pod spec says', () => {
  const pod: V1Pod = {
    spec: {
      containers: [
        {
          name: 'management-pod',
          env: [
            { name: 'ALLOW_PASSWORD', value: 'false' },
            { name: 'CUSTOM_PASSWORD', valueFrom: { secretKeyRef: { name: 'mp-creds', key: 'pw' } } },
          ],
          envFrom: [{ secretRef: { name: 'mp-env' } }],
        },
      ],
      volumes: [{ name: 'keys', secret: { secretName: 'mp-keys' } }],
    },
  }

  it('lists the Secrets it references, in order', () => {
    expect(secretReferences(pod, 'management-pod')).toEqual([
      { name: 'mp-creds', key: 'pw', via: 'env CUSTOM_PASSWORD' },
      { name: 'mp-env', via: 'envFrom' },
      { name: 'mp-keys', via: 'volume keys' },
    ])
  })

  it('reads ALLOW_PASSWORD', () => {
    expect(passwordLoginFromPod(pod, undefined)).toBe(false)
    expect(passwordLoginFromPod({ spec: { containers: [{ name: 'x' }] } }, undefined)).toBeUndefined()
  })
})
