/**
 * Reading SSH credentials out of Secrets: which Secret (the one the pod itself references, else well-known names),
 * which keys hold the password and the private key, and whether their values are usable. Pure functions over
 * Secret and Pod objects; fetching them is the caller's job.
 */
import type { V1Pod, V1Secret } from '@kubernetes/client-node'
import { AccessError, ExitCode } from '../errors.js'
import { registerSecret } from '../redact.js'

/** Secret names tried, in order, when neither --secret nor the pod spec names one. */
export const wellKnownSecretNames = [
  'management-pod',
  'management-pod-ssh',
  'management-pod-credentials',
  'management-pod-secret',
  'akamas-management-pod',
  'management-container',
]

/** Keys that hold the SSH password, in order of preference. */
export const passwordKeys = [
  'password',
  'ssh-password',
  'ssh_password',
  'sshPassword',
  'CUSTOM_PASSWORD',
  'akamas_password',
]

/** Keys that hold the private key; `ssh-privatekey` is the kubernetes.io/ssh-auth convention. */
export const privateKeyKeys = [
  'ssh-privatekey',
  'id_rsa',
  'id_ed25519',
  'id_ecdsa',
  'private-key',
  'private_key',
  'privateKey',
  'ssh-private-key',
  'ssh_private_key',
  'key',
]

export interface SecretReference {
  name: string
  /** The key the pod reads, when the reference names one (env secretKeyRef). */
  key?: string
  /** How the pod uses it, for messages: `env CUSTOM_PASSWORD`, `envFrom`, `volume ssh-keys`. */
  via: string
}

/** Secrets the pod spec references, in the order they appear: env secretKeyRef, envFrom, secret volumes. */
export function secretReferences(pod: V1Pod | undefined, containerName: string | undefined): SecretReference[] {
  const references: SecretReference[] = []
  const containers = (pod?.spec?.containers ?? []).filter((c) => !containerName || c.name === containerName)
  for (const container of containers) {
    for (const env of container.env ?? []) {
      const ref = env.valueFrom?.secretKeyRef
      if (ref?.name) references.push({ name: ref.name, key: ref.key, via: `env ${env.name}` })
    }
    for (const source of container.envFrom ?? []) {
      if (source.secretRef?.name) references.push({ name: source.secretRef.name, via: 'envFrom' })
    }
  }
  for (const volume of pod?.spec?.volumes ?? []) {
    if (volume.secret?.secretName) references.push({ name: volume.secret.secretName, via: `volume ${volume.name}` })
  }
  const seen = new Set<string>()
  return references.filter((reference) => {
    const id = `${reference.name}/${reference.key ?? ''}`
    if (seen.has(id)) return false
    seen.add(id)
    return true
  })
}

/** What the pod's environment says about password login (ALLOW_PASSWORD), when it says anything. */
export function passwordLoginFromPod(pod: V1Pod | undefined, containerName: string | undefined): boolean | undefined {
  for (const container of pod?.spec?.containers ?? []) {
    if (containerName && container.name !== containerName) continue
    const value = container.env?.find((env) => env.name === 'ALLOW_PASSWORD')?.value
    if (value !== undefined) return /^(true|yes|1)$/i.test(value.trim())
  }
  return undefined
}

export interface FieldNames {
  /** --password-field: the key that holds the password. */
  password?: string
  /** --key-field: the key that holds the private key. */
  privateKey?: string
}

export interface SecretCredentials {
  password: string | undefined
  privateKey: string | undefined
  passwordField: string | undefined
  privateKeyField: string | undefined
  /** Why a value that is there cannot be used (bad base64, not a key), when the other one can. */
  unusable: { password?: AccessError; privateKey?: AccessError }
}

/**
 * Finds and decodes the password and private key in a Secret. `references` are how the pod spec reads this Secret:
 * a key it puts in a password-like variable (CUSTOM_PASSWORD from key `pw`) is tried before the well-known names.
 */
export function readSecretCredentials(
  secret: V1Secret,
  fields: FieldNames,
  references: SecretReference[] = [],
): SecretCredentials {
  const data = secret.data ?? {}
  const name = secret.metadata?.name ?? 'the Secret'
  const pick = (explicit: string | undefined, known: string[], looksRight: RegExp): string | undefined => {
    if (explicit !== undefined) {
      if (!(explicit in data)) {
        throw new AccessError(
          `Secret ${name} has no key "${explicit}" (it has: ${Object.keys(data).join(', ') || 'none'})`,
          {
            exitCode: ExitCode.badCredentials,
            hint: 'name an existing key with --password-field or --key-field',
          },
        )
      }
      return explicit
    }
    const hinted = references.flatMap((reference) =>
      reference.key &&
      (known.includes(reference.key) || looksRight.test(reference.key) || looksRight.test(reference.via))
        ? [reference.key]
        : [],
    )
    return [...hinted, ...known].find((key) => key in data)
  }
  const passwordField = pick(fields.password, passwordKeys, /pass/i)
  const privateKeyField = pick(fields.privateKey, privateKeyKeys, /(private|ssh).*key|^id_/i)
  // A broken value of one kind must not hide a good one of the other (ssh logs in with whichever works, and
  // `password` does not need the key): each problem is kept, and thrown only when nothing usable is left.
  const unusable: SecretCredentials['unusable'] = {}
  let password: string | undefined
  let privateKey: string | undefined
  try {
    password = passwordField === undefined ? undefined : decodeValue(data[passwordField], name, passwordField)
    password = password?.replace(/\r?\n$/, '')
    registerSecret(password)
  } catch (error) {
    if (!(error instanceof AccessError)) throw error
    unusable.password = error
  }
  try {
    const rawKey = privateKeyField === undefined ? undefined : decodeValue(data[privateKeyField], name, privateKeyField)
    // Registered before it is checked: a value that is not a key may still be a secret.
    registerSecret(rawKey)
    privateKey = rawKey === undefined ? undefined : normalizePrivateKey(rawKey, name, privateKeyField!)
    registerSecret(privateKey)
  } catch (error) {
    if (!(error instanceof AccessError)) throw error
    unusable.privateKey = error
  }
  if (password === undefined && privateKey === undefined && (unusable.password || unusable.privateKey)) {
    throw unusable.password ?? unusable.privateKey
  }
  return {
    password: password === '' ? undefined : password,
    privateKey,
    passwordField,
    privateKeyField,
    unusable,
  }
}

const base64Pattern = /^[A-Za-z0-9+/]*={0,2}$/

function decodeValue(value: string | undefined, secretName: string, field: string): string {
  const compact = (value ?? '').replace(/\s+/g, '')
  if (compact.length % 4 !== 0 || !base64Pattern.test(compact)) {
    throw new AccessError(`the value of "${field}" in Secret ${secretName} is not valid base64`, {
      exitCode: ExitCode.badCredentials,
      hint: `check it with: kubectl get secret ${secretName} -o jsonpath='{.data.${field}}'`,
    })
  }
  return Buffer.from(compact, 'base64').toString('utf8')
}

/**
 * A private key as ssh2 can read it. Secrets copied between tools arrive with literal `\n`, CRLF, or base64 on
 * top of the PEM; anything that is still not a PEM or OpenSSH key is an error now rather than an SSH failure later.
 */
export function normalizePrivateKey(raw: string, secretName: string, field: string): string {
  let key = raw.trim()
  if (!key.includes('\n') && key.includes('\\n')) key = key.replace(/\\n/g, '\n')
  if (!key.startsWith('-----BEGIN') && base64Pattern.test(key.replace(/\s+/g, ''))) {
    const decoded = Buffer.from(key.replace(/\s+/g, ''), 'base64').toString('utf8').trim()
    if (decoded.startsWith('-----BEGIN')) key = decoded
  }
  key = key.replace(/\r\n/g, '\n')
  if (!/^-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\n[\s\S]+\n-----END [A-Z0-9 ]*PRIVATE KEY-----$/.test(key)) {
    throw new AccessError(`the value of "${field}" in Secret ${secretName} is not a PEM or OpenSSH private key`, {
      exitCode: ExitCode.badCredentials,
      hint: `a key starts with "-----BEGIN ... PRIVATE KEY-----"; check it with: kubectl get secret ${secretName} -o jsonpath='{.data.${field}}' | base64 -d | head -1`,
    })
  }
  return `${key}\n`
}
