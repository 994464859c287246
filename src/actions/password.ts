/**
 * `akm-access password`: the SSH password (or key) of the management pod, read from the cluster Secret — or, for
 * users who may exec but not read Secrets, from the file the management container keeps it in.
 */
import { randomBytes } from 'node:crypto'
import { renameSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import path from 'node:path'
import type { Deps } from '../deps.js'
import type { DockerTarget } from '../docker/target.js'
import { AccessError, ExitCode } from '../errors.js'
import { KubeApiError } from '../kube/api-errors.js'
import type { KubeClient } from '../kube/client.js'
import { registerSecret } from '../redact.js'
import { capturePodCommand } from '../session/pod-exec.js'
import {
  type CredentialOptions,
  type Credentials,
  findCredentials,
  findManagementPod,
  type ManagementPod,
  PodNotReadyError,
  prefetchSecret,
  type TargetOptions,
} from '../target/find-target.js'
import { type Io, say } from '../terminal/io.js'

export const podPasswordFile = '/work/akamas_password'

export interface PasswordOptions {
  target: TargetOptions
  credentials: CredentialOptions
  /** Print the private key instead of the password. */
  key: boolean
  /** Write the private key to this file (mode 0600). */
  keyFile: string | undefined
  force: boolean
}

export interface PasswordResult {
  password?: string
  privateKey?: string
  keyFile?: string
  source: string
  passwordLogin?: boolean
}

export async function runPassword(
  options: PasswordOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter'>,
): Promise<PasswordResult> {
  const backend = await deps.backend()
  if (backend.kind === 'docker') return containerPassword(backend.target, options, deps.io)
  const client = await deps.kube()
  const namespace = options.target.namespace ?? client.connection.namespace.value
  const credentials = await readCredentials(client, namespace, options, deps)
  if (options.key || options.keyFile) {
    if (credentials.unusable?.privateKey) throw credentials.unusable.privateKey
    if (!credentials.privateKey) {
      throw new AccessError(`${credentials.source} holds no private key`, {
        exitCode: ExitCode.badCredentials,
        hint: 'this installation uses a password: run akm-access password without --key',
      })
    }
    await assertUsableKey(credentials.privateKey, credentials)
    if (options.keyFile) {
      const written = writeKeyFile(options.keyFile, credentials.privateKey, options.force, deps.io)
      return { keyFile: written, source: credentials.source }
    }
    return { privateKey: credentials.privateKey, source: credentials.source }
  }
  if (credentials.unusable?.password) throw credentials.unusable.password
  if (credentials.password === undefined && credentials.passwordField !== undefined) {
    // An empty value is a broken Secret, not a key-only installation (those have no password key at all).
    throw new AccessError(`the password (key "${credentials.passwordField}") in ${credentials.source} is empty`, {
      exitCode: ExitCode.badCredentials,
      hint: `set it in the Secret, or name the right key with --password-field${credentials.privateKey ? '; the private key is there: akm-access password --key' : ''}`,
    })
  }
  if (credentials.password === undefined) {
    throw new AccessError('password login is disabled on this installation (key only)', {
      exitCode: ExitCode.passwordDisabled,
      hint: 'use the key: akm-access password --key-file ~/.ssh/akamas (or akm-access ssh, which uses it)',
    })
  }
  if (credentials.passwordLogin === false) {
    say(
      deps.io,
      'warning: password login is disabled in the management pod (ALLOW_PASSWORD is not true); sshd will refuse it',
    )
  }
  return {
    password: credentials.password,
    source: credentials.source,
    ...(credentials.passwordLogin === undefined ? {} : { passwordLogin: credentials.passwordLogin }),
  }
}

/**
 * The docker-compose installation: CUSTOM_PASSWORD from the container's configuration (readable while it is
 * stopped), else the password the image generated into /work/akamas_password. There is no key to print.
 */
async function containerPassword(target: DockerTarget, options: PasswordOptions, io: Io): Promise<PasswordResult> {
  if (options.key || options.keyFile) {
    throw new AccessError(`the docker-compose installation (container ${target.name}) has no SSH key`, {
      exitCode: ExitCode.badCredentials,
      hint: 'it uses a password: run akm-access password --docker without --key (or log in with your own key: --identity-file)',
    })
  }
  const credentials = await target.credentials()
  if (credentials.password === undefined) {
    throw new AccessError(credentials.unusableHint?.message ?? `no SSH password for container ${target.name}`, {
      exitCode: ExitCode.badCredentials,
      hint: `set CUSTOM_PASSWORD in the compose file, or see why the image wrote none: docker logs ${target.name}`,
    })
  }
  if (credentials.passwordLogin === false) {
    say(
      io,
      'warning: password login is disabled in the management container (ALLOW_PASSWORD is not true); sshd will refuse it',
    )
  }
  return {
    password: credentials.password,
    source: credentials.source,
    ...(credentials.passwordLogin === undefined ? {} : { passwordLogin: credentials.passwordLogin }),
  }
}

/**
 * Reads the Secret (fetched while the pod is being found). Users who may not read Secrets but may exec get the
 * password from the management container's own file instead; we say which source was used.
 */
async function readCredentials(
  client: KubeClient,
  namespace: string,
  options: PasswordOptions,
  deps: Pick<Deps, 'io' | 'prompter'>,
): Promise<Credentials> {
  const prefetched = prefetchSecret(client, namespace, options.credentials)
  let target: ManagementPod | undefined
  let notReady: PodNotReadyError | undefined
  try {
    target = await findManagementPod(client, { ...options.target, namespace }, deps.prompter)
  } catch (error) {
    // The password lives in the Secret, so a pod that is not ready yet (restarting, mid-rollout) does not stop us,
    // and its spec still names the Secret. Anything else — no such pod, a --pod, --selector or --container that
    // matches nothing, several candidates and nobody to ask — is an error: the answer would be a guess.
    if (!(error instanceof PodNotReadyError)) throw error
    notReady = error
  }
  let credentials: Credentials
  try {
    credentials = await findCredentials(client, namespace, target ?? notReady?.target, options.credentials, prefetched)
  } catch (error) {
    const forbidden = error instanceof KubeApiError && error.httpStatus === 403
    if (!forbidden || options.key || options.keyFile) throw error
    // The fallback runs a command in the pod, which needs it running.
    if (notReady || !target) throw notReady ?? error
    const fromPod = await readPodPasswordFile(client, target)
    if (typeof fromPod === 'string') {
      throw new AccessError(error.message, {
        exitCode: ExitCode.forbidden,
        hint: `${error.hint ?? 'ask your cluster administrator for it'}; ${fromPod}`,
        cause: error,
      })
    }
    say(deps.io, `note: not allowed to read Secrets; using ${fromPod.source}`)
    return fromPod
  }
  if (notReady) {
    say(deps.io, `note: ${notReady.message}; the password comes from ${credentials.source} all the same`)
  }
  return credentials
}

/** The password from the pod's own file, or why it could not be read (for the hint of the Secret's 403). */
async function readPodPasswordFile(client: KubeClient, target: ManagementPod): Promise<Credentials | string> {
  let result: Awaited<ReturnType<typeof capturePodCommand>>
  try {
    result = await capturePodCommand(client, target, ['cat', podPasswordFile])
  } catch (error) {
    const denied = error instanceof KubeApiError && error.httpStatus === 403
    return denied
      ? `reading ${podPasswordFile} in the pod instead needs exec ("create" on "pods/exec"), which is denied too`
      : `reading ${podPasswordFile} in the pod instead failed: ${(error as Error).message}`
  }
  const password = result.stdout.replace(/\r?\n$/, '')
  if (result.exitCode !== 0 || password === '') {
    return `${podPasswordFile} in pod ${target.pod.name} is missing or empty, so it cannot stand in for the Secret`
  }
  registerSecret(password)
  return {
    password,
    privateKey: undefined,
    source: `file ${podPasswordFile} in pod ${target.pod.name}`,
    passwordLogin: undefined,
  }
}

/**
 * A key printed or written must be one ssh can load: catching a corrupted Secret here beats "invalid format" from
 * ssh later. An encrypted key is fine (its passphrase is the user's business).
 */
async function assertUsableKey(key: string, credentials: Credentials): Promise<void> {
  // ssh2 is only loaded on this path: plain `password` stays fast.
  const { preparePrivateKey } = await import('../ssh/ssh-client.js')
  const check = await preparePrivateKey(key, undefined)
  if (check.ok || check.reason !== 'unusable') return
  const field = credentials.privateKeyField ? ` (key "${credentials.privateKeyField}")` : ''
  throw new AccessError(`the private key${field} in ${credentials.source} is malformed: ${check.message}`, {
    exitCode: ExitCode.badCredentials,
    hint: 'the Secret must hold an OpenSSH, PEM (RSA/EC) or PKCS#8 private key; fix it, or name another key with --key-field',
  })
}

/** Writes the key with mode 0600; an existing file only with `force`, and then replaced, never rewritten in place. */
function writeKeyFile(given: string, key: string, force: boolean, io: Io): string {
  const file = expandHome(given, io)
  const fail = (error: unknown): never => {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      throw new AccessError(`${file} already exists`, {
        exitCode: ExitCode.local,
        hint: 'pass --force to overwrite it, or choose another path',
      })
    }
    throw new AccessError(`cannot write ${file}: ${describeFsError(error)}`, {
      exitCode: ExitCode.local,
      hint: 'check that the folder exists and is writable',
    })
  }
  if (!force) {
    try {
      // 'wx' refuses an existing file atomically, and the file is 0600 from its first byte.
      writeFileSync(file, key, { mode: 0o600, flag: 'wx' })
    } catch (error) {
      fail(error)
    }
    return file
  }
  // Writing over an existing file would keep its mode (say 0644) and leave a world-readable key; a fresh 0600 file
  // renamed over it cannot.
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`)
  try {
    writeFileSync(temporary, key, { mode: 0o600, flag: 'wx' })
    renameSync(temporary, file)
  } catch (error) {
    rmSync(temporary, { force: true })
    fail(error)
  }
  return file
}

/** `--key-file=~/.ssh/akamas` reaches us unexpanded (the shell expands ~ only at the start of a word). */
function expandHome(file: string, io: Io): string {
  if (file !== '~' && !file.startsWith('~/')) return file
  return path.join(io.env.HOME || homedir(), file.slice(1))
}

function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code
  const known: Record<string, string> = {
    ENOENT: 'the folder does not exist',
    EACCES: 'permission denied',
    EISDIR: 'it is a folder',
    ENOTDIR: 'a part of the path is not a folder',
    EROFS: 'the file system is read-only',
  }
  return (code && known[code]) ?? (error as Error).message
}
