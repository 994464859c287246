/**
 * Everything between "which installation" and "an authenticated SSH connection to its management pod": find the
 * pod and its credentials (in one round trip), decide which credential to use (asking for a key's passphrase if
 * needed), and connect ssh2 over a pod stream with the host key checked. Shared by ssh, cp, sync and ssh-config.
 * `locateTarget` is the same for either backend (the pod, or the docker-compose management container).
 */
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import type { Duplex } from 'node:stream'
import { type KubeTarget, kubeTarget } from '../backend/kube-target.js'
import type { ManagementTarget, SshTarget } from '../backend/target.js'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import { preloadWebSocket } from '../kube/websocket.js'
import { registerSecret } from '../redact.js'
import { hostKeyVerifier } from '../ssh/host-key-policy.js'
import { defaultKnownHostsPath, fileProblem, hostKeyAlias } from '../ssh/known-hosts.js'
import {
  connectSsh,
  preloadSsh2,
  preparePrivateKey,
  type SshConnection,
  type SshCredentials,
} from '../ssh/ssh-client.js'
import {
  type CredentialOptions,
  type Credentials,
  findCredentials,
  findManagementPod,
  prefetchSecret,
  type TargetOptions,
} from '../target/find-target.js'
import { say } from '../terminal/io.js'

export interface SshAccessOptions {
  target: TargetOptions
  credentials: CredentialOptions
  remotePort: number
  user: string
  acceptNewHostKey: boolean
  /** Default: ~/.config/akm-access/known_hosts. */
  knownHostsFile: string | undefined
  passphraseFile: string | undefined
  /** --identity-file: a private key of the user's own, tried before the installation's credentials. */
  identityFile?: string | undefined
}

/** The management pod and how to reach and trust its sshd (client, namespace, pod, stream, known_hosts, alias). */
export type PodLocation = KubeTarget

type AccessDeps = Pick<Deps, 'io' | 'kube' | 'prompter' | 'logger'>
type TargetDeps = AccessDeps & Pick<Deps, 'backend'>

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
  const credentials = () => findCredentials(client, namespace, pod, options.credentials, prefetched)
  const location = kubeTarget(client, pod, {
    knownHostsFile: options.knownHostsFile ?? defaultKnownHostsPath(deps.io.env, deps.io.env.HOME || homedir()),
    hostKeyAlias: hostKeyAlias(client.connection.cluster.server, namespace, pod.pod.workload),
    credentials,
  })
  return { location, credentials }
}

/**
 * The management target of either backend, with its credentials (fetched at the same time on Kubernetes, awaited
 * only by those who need them) and --identity-file's key on top.
 */
export async function locateTarget(
  options: Pick<SshAccessOptions, 'target' | 'credentials' | 'knownHostsFile' | 'identityFile'>,
  deps: TargetDeps,
): Promise<{ location: ManagementTarget; credentials: () => Promise<Credentials> }> {
  // An SSH connection follows on either backend, over a pod stream on Kubernetes: their libraries load while the
  // target is being found (the API requests are on the network), not after.
  preloadSsh2()
  const backend = await deps.backend()
  let located: { location: ManagementTarget; credentials: () => Promise<Credentials> }
  if (backend.kind === 'docker') {
    const target = backend.target
    if (options.knownHostsFile) target.knownHostsFile = options.knownHostsFile
    located = { location: target, credentials: () => target.credentials() }
  } else {
    const locating = locateManagementPod(options, deps)
    preloadWebSocket()
    located = await locating
  }
  const { identityFile } = options
  if (!identityFile) return located
  return {
    location: located.location,
    credentials: () => located.credentials().then((found) => withIdentity(found, identityFile)),
  }
}

/** Finds the target and its credentials, and picks the credential to log in with. */
export async function resolveSshAccess(
  options: SshAccessOptions,
  deps: TargetDeps,
): Promise<{ location: ManagementTarget; credentials: SshCredentials; source: string }> {
  const { location, credentials } = await locateTarget(options, deps)
  const found = await credentials()
  return { location, credentials: await usableCredentials(found, options.passphraseFile, deps), source: found.source }
}

/** Connects ssh2 to the target's sshd over `sock` (a fresh stream by default), checking the host key. */
export async function connectToPod(
  location: SshTarget,
  credentials: SshCredentials,
  options: Pick<SshAccessOptions, 'remotePort' | 'user' | 'acceptNewHostKey'> & {
    /** SSH keepalive interval (default 15 s; 0: none). */
    keepaliveMs?: number
  },
  deps: AccessDeps,
  sock?: Duplex,
): Promise<SshConnection> {
  const stream = sock ?? (await location.openStream(options.remotePort))
  const hostKeys = hostKeyVerifier({
    knownHostsFile: location.knownHostsFile,
    alias: location.hostKeyAlias,
    hostLabel: location.name,
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
      ...(options.keepaliveMs !== undefined ? { keepaliveIntervalMs: options.keepaliveMs } : {}),
      logger: deps.logger,
    })
  } catch (error) {
    stream.destroy()
    if (hostKeys.verdict() === 'rejected-new') {
      throw new AccessError(
        `host key verification failed: the host key of the management ${location.noun} is not known yet`,
        {
          exitCode: ExitCode.hostKey,
          hint: deps.prompter.canPrompt
            ? 'answer yes to trust it'
            : 'check the fingerprint, then pass --accept-new-host-key (or run once in a terminal to confirm it)',
        },
      )
    }
    if (hostKeys.verdict() === 'changed') {
      throw new AccessError(`the host key of ${location.name} has changed`, {
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
      if (credentials.unusableHint) {
        throw new AccessError(credentials.unusableHint.message, {
          exitCode: credentials.password === undefined ? ExitCode.badCredentials : ExitCode.passwordDisabled,
          hint: credentials.unusableHint.hint,
        })
      }
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

/** The user's own key first; the installation's password stays as the fallback. */
function withIdentity(found: Credentials, file: string): Credentials {
  let key: string
  try {
    key = readFileSync(file, 'utf8')
  } catch (error) {
    throw new AccessError(`cannot read the identity file ${file}: ${fileProblem(error)}`, {
      exitCode: ExitCode.local,
      hint: '--identity-file names a private key file (e.g. ~/.ssh/id_ed25519)',
    })
  }
  registerSecret(key)
  // The Secret's key (if any) no longer matters; a broken password still does.
  const unusable = found.unusable?.password ? { password: found.unusable.password } : {}
  return { ...found, privateKey: key, source: `identity file ${file}`, unusable }
}

function readPassphrase(file: string): string {
  try {
    const passphrase = readFileSync(file, 'utf8').replace(/\r?\n$/, '')
    registerSecret(passphrase)
    return passphrase
  } catch (error) {
    throw new AccessError(`cannot read the passphrase file ${file}: ${fileProblem(error)}`, {
      exitCode: ExitCode.local,
      hint: '--passphrase-file names a file that holds the key’s passphrase (one line)',
    })
  }
}
