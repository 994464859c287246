/**
 * `akm-access password`: the SSH password (or key) of the management pod, read from the cluster Secret — or, for
 * users who may exec but not read Secrets, from the file the management container keeps it in.
 */
import { writeFileSync } from 'node:fs'
import type { Deps } from '../deps.js'
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
  prefetchSecret,
  type TargetOptions,
} from '../target/find-target.js'
import { say } from '../terminal/io.js'

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
  deps: Pick<Deps, 'io' | 'kube' | 'prompter'>,
): Promise<PasswordResult> {
  const client = await deps.kube()
  const namespace = options.target.namespace ?? client.connection.namespace.value
  const credentials = await readCredentials(client, namespace, options, deps)
  if (options.key || options.keyFile) {
    if (!credentials.privateKey) {
      throw new AccessError(`${credentials.source} holds no private key`, {
        exitCode: ExitCode.badCredentials,
        hint: 'this installation uses a password: run akm-access password without --key',
      })
    }
    if (options.keyFile) {
      writeKeyFile(options.keyFile, credentials.privateKey, options.force)
      return { keyFile: options.keyFile, source: credentials.source }
    }
    return { privateKey: credentials.privateKey, source: credentials.source }
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
  let podError: unknown
  try {
    target = await findManagementPod(client, { ...options.target, namespace }, deps.prompter)
  } catch (error) {
    // The password lives in the Secret, whatever state the pod is in; only a missing namespace or access is final.
    if (!(error instanceof AccessError) || !podLookupIsOptional(error.exitCode)) throw error
    podError = error
  }
  try {
    return await findCredentials(client, namespace, target, options.credentials, prefetched)
  } catch (error) {
    const forbidden = error instanceof KubeApiError && error.httpStatus === 403
    if (!forbidden || !target || options.key || options.keyFile) throw podError ?? error
    const fromPod = await readPodPasswordFile(client, target)
    if (fromPod === undefined) throw error
    say(deps.io, `note: not allowed to read Secrets; using ${fromPod.source}`)
    return fromPod
  }
}

function podLookupIsOptional(exitCode: number): boolean {
  return exitCode === ExitCode.podNotFound || exitCode === ExitCode.podNotReady || exitCode === ExitCode.usage
}

async function readPodPasswordFile(client: KubeClient, target: ManagementPod): Promise<Credentials | undefined> {
  try {
    const result = await capturePodCommand(client, target, ['cat', podPasswordFile])
    const password = result.stdout.replace(/\r?\n$/, '')
    if (result.exitCode !== 0 || password === '') return undefined
    registerSecret(password)
    return {
      password,
      privateKey: undefined,
      source: `file ${podPasswordFile} in pod ${target.pod.name}`,
      passwordLogin: undefined,
    }
  } catch {
    // Exec is forbidden too: the Secret's 403 is the error worth showing.
    return undefined
  }
}

function writeKeyFile(path: string, key: string, force: boolean): void {
  try {
    // 'wx' refuses an existing file atomically; with --force we replace it, still 0600 from the first byte.
    writeFileSync(path, key, { mode: 0o600, flag: force ? 'w' : 'wx' })
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') {
      throw new AccessError(`${path} already exists`, {
        exitCode: ExitCode.local,
        hint: 'pass --force to overwrite it, or choose another path',
      })
    }
    throw new AccessError(`cannot write ${path}: ${(error as Error).message}`, {
      exitCode: ExitCode.local,
      hint: 'check that the folder exists and is writable',
    })
  }
}
