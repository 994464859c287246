/**
 * Everything between "which installation" and "an authenticated SSH connection to its management pod": find the
 * pod and its credentials (in one round trip), decide which credential to use (asking for a key's passphrase if
 * needed), and connect ssh2 over a pod stream with the host key checked. Shared by ssh, cp, sync and ssh-config.
 */
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import type { Duplex } from 'node:stream'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import { registerSecret } from '../redact.js'
import { hostKeyVerifier } from '../ssh/host-key-policy.js'
import { defaultKnownHostsPath, hostKeyAlias } from '../ssh/known-hosts.js'
import { connectSsh, preparePrivateKey, type SshConnection, type SshCredentials } from '../ssh/ssh-client.js'
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
import { openPodStream, type PodStreamTarget } from '../tunnel/pod-stream.js'

export interface SshAccessOptions {
  target: TargetOptions
  credentials: CredentialOptions
  remotePort: number
  user: string
  acceptNewHostKey: boolean
  /** Default: ~/.config/akm-access/known_hosts. */
  knownHostsFile: string | undefined
  passphraseFile: string | undefined
}

/** The management pod and how to reach and trust its sshd. */
export interface PodLocation {
  client: KubeClient
  namespace: string
  pod: ManagementPod
  stream: PodStreamTarget
  knownHostsFile: string
  /** The stable name its host key is stored under. */
  hostKeyAlias: string
}

type AccessDeps = Pick<Deps, 'io' | 'kube' | 'prompter' | 'logger'>

/** Finds the pod; `credentials` is fetched at the same time and awaited only by those who need it. */
export async function locateManagementPod(
  options: Pick<SshAccessOptions, 'target' | 'credentials' | 'knownHostsFile'>,
  deps: AccessDeps,
): Promise<{ location: PodLocation; credentials: () => Promise<Credentials> }> {
  const client = await deps.kube()
  const namespace = options.target.namespace ?? client.connection.namespace.value
  // The pod list and the likely Secret travel together: one round trip instead of two.
  const prefetched = prefetchSecret(client, namespace, options.credentials)
  prefetched.catch(() => {})
  const pod = await findManagementPod(client, { ...options.target, namespace }, deps.prompter)
  const location: PodLocation = {
    client,
    namespace,
    pod,
    stream: { namespace, podName: pod.pod.name },
    knownHostsFile: options.knownHostsFile ?? defaultKnownHostsPath(deps.io.env, deps.io.env.HOME || homedir()),
    hostKeyAlias: hostKeyAlias(client.connection.cluster.server, namespace, pod.pod.workload),
  }
  return { location, credentials: () => findCredentials(client, namespace, pod, options.credentials, prefetched) }
}

/** Finds the pod and its credentials, and picks the credential to log in with. */
export async function resolveSshAccess(
  options: SshAccessOptions,
  deps: AccessDeps,
): Promise<{ location: PodLocation; credentials: SshCredentials; source: string }> {
  const { location, credentials } = await locateManagementPod(options, deps)
  const found = await credentials()
  return { location, credentials: await usableCredentials(found, options.passphraseFile, deps), source: found.source }
}

/** Connects ssh2 to the pod's sshd over `sock` (a fresh pod stream by default), checking the host key. */
export async function connectToPod(
  location: PodLocation,
  credentials: SshCredentials,
  options: Pick<SshAccessOptions, 'remotePort' | 'user' | 'acceptNewHostKey'>,
  deps: AccessDeps,
  sock?: Duplex,
): Promise<SshConnection> {
  const stream = sock ?? (await openPodStream(location.client, location.stream, options.remotePort))
  const hostKeys = hostKeyVerifier({
    knownHostsFile: location.knownHostsFile,
    alias: location.hostKeyAlias,
    hostLabel: location.pod.pod.name,
    acceptNew: options.acceptNewHostKey,
    io: deps.io,
    prompter: deps.prompter,
  })
  try {
    return await connectSsh({
      sock: stream,
      username: options.user,
      credentials,
      verifyHostKey: hostKeys.verify,
      // A person may take a while to answer the host key question.
      readyTimeoutMs: deps.prompter.canPrompt ? 300_000 : 30_000,
      logger: deps.logger,
    })
  } catch (error) {
    stream.destroy()
    if (hostKeys.verdict() === 'rejected-new') {
      throw new AccessError('host key verification failed: the host key of the management pod is not known yet', {
        exitCode: ExitCode.hostKey,
        hint: deps.prompter.canPrompt
          ? 'answer yes to trust it'
          : 'check the fingerprint, then pass --accept-new-host-key (or run once in a terminal to confirm it)',
      })
    }
    if (hostKeys.verdict() === 'changed') {
      throw new AccessError(`the host key of ${location.pod.pod.name} has changed`, {
        exitCode: ExitCode.hostKey,
        hint: `only if you know why (e.g. the pod's host keys were regenerated): akm-access ssh --forget-host-key`,
      })
    }
    throw error
  }
}

/** The key if there is one (asking for its passphrase when needed), else the password. */
export async function usableCredentials(
  credentials: Credentials,
  passphraseFile: string | undefined,
  deps: Pick<Deps, 'io' | 'prompter'>,
): Promise<SshCredentials> {
  const password = credentials.passwordLogin === false ? undefined : credentials.password
  if (!credentials.privateKey) {
    if (password === undefined) {
      throw new AccessError(`${credentials.source} has no usable password and no private key`, {
        exitCode: ExitCode.passwordDisabled,
        hint: 'password login is disabled on this installation; add the key to the Secret or name it with --secret',
      })
    }
    return { password }
  }
  let passphrase = passphraseFile ? readPassphrase(passphraseFile) : undefined
  for (let attempt = 0; ; attempt++) {
    const check = await preparePrivateKey(credentials.privateKey, passphrase)
    if (check.ok) {
      return { privateKey: check.key, ...(passphrase ? { passphrase } : {}), ...(password ? { password } : {}) }
    }
    const canAsk = deps.prompter.canPrompt && !passphraseFile && attempt < 3
    if (check.reason !== 'unusable' && canAsk) {
      if (check.reason === 'bad-passphrase') say(deps.io, 'Bad passphrase, try again.')
      passphrase = await deps.prompter.secret(`Enter passphrase for the key in ${credentials.source}:`)
      registerSecret(passphrase)
      continue
    }
    if (password !== undefined && check.reason === 'unusable') return { password }
    throw new AccessError(
      check.reason === 'needs-passphrase'
        ? `the private key in ${credentials.source} is encrypted`
        : check.reason === 'bad-passphrase'
          ? 'the passphrase for the private key is wrong'
          : `the private key in ${credentials.source} cannot be used: ${check.message}`,
      {
        exitCode: ExitCode.badCredentials,
        hint:
          check.reason === 'unusable'
            ? 'the key must be an OpenSSH, PEM (RSA/EC), PKCS#8 or PuTTY v2 private key'
            : 'give its passphrase with --passphrase-file FILE (or run in a terminal to be asked)',
      },
    )
  }
}

function readPassphrase(file: string): string {
  try {
    const passphrase = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
    registerSecret(passphrase)
    return passphrase
  } catch (error) {
    throw new AccessError(`cannot read the passphrase file ${file}: ${(error as Error).message}`, {
      exitCode: ExitCode.local,
    })
  }
}
