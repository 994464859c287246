/**
 * `akm-access ssh`: the two-terminal manual flow in one command. Finds the pod and reads its Secret (at the same
 * time), opens a local tunnel for other tools, and runs an SSH session over a pod stream of its own (ssh2 speaks
 * straight into the port-forward, no local hop), with the host key checked against our known_hosts.
 */
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import { registerSecret } from '../redact.js'
import { bridgeSession } from '../session/terminal-bridge.js'
import { hostKeyVerifier } from '../ssh/host-key-policy.js'
import { defaultKnownHostsPath, hostKeyAlias, removeHostKey } from '../ssh/known-hosts.js'
import { connectSsh, preparePrivateKey, type SshCredentials } from '../ssh/ssh-client.js'
import {
  type CredentialOptions,
  type Credentials,
  findCredentials,
  findManagementPod,
  prefetchSecret,
  type TargetOptions,
} from '../target/find-target.js'
import { say } from '../terminal/io.js'
import { type LocalForward, startLocalForward } from '../tunnel/local-forward.js'
import { openPodStream } from '../tunnel/pod-stream.js'
import { exitCodeOf } from './shell.js'

export interface SshOptions {
  target: TargetOptions
  credentials: CredentialOptions
  /** The remote command (joined with spaces, as OpenSSH does); empty for a login shell. */
  command: string[]
  tty: 'auto' | 'force' | 'never'
  /** Preferred local port for the tunnel other tools can use; 0 = any; undefined = no listener. */
  localPort: number | undefined
  remotePort: number
  user: string
  escapeChar: string
  acceptNewHostKey: boolean
  knownHostsFile: string | undefined
  passphraseFile: string | undefined
  /** Remove the stored host key of this installation and stop. */
  forgetHostKey: boolean
}

export async function runSsh(
  options: SshOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'prompter' | 'logger'>,
): Promise<number> {
  const { io } = deps
  const client = await deps.kube()
  const namespace = options.target.namespace ?? client.connection.namespace.value
  // The pod list and the likely Secret travel together: one round trip instead of two.
  const prefetched = prefetchSecret(client, namespace, options.credentials)
  const target = await findManagementPod(client, { ...options.target, namespace }, deps.prompter)
  const knownHostsFile = options.knownHostsFile ?? defaultKnownHostsPath(io.env, io.env.HOME || homedir())
  const alias = hostKeyAlias(client.connection.cluster.server, namespace, target.pod.workload)
  if (options.forgetHostKey) {
    prefetched.catch(() => {})
    const removed = removeHostKey(knownHostsFile, alias)
    say(io, removed > 0 ? `forgot the host key of ${alias} (${knownHostsFile})` : `no host key stored for ${alias}`)
    return 0
  }
  const credentials = await findCredentials(client, namespace, target, options.credentials, prefetched)
  const sshCredentials = await usableCredentials(credentials, options, deps)

  const podTarget = { namespace, podName: target.pod.name }
  let tunnel: LocalForward | undefined
  const sock = await openPodStream(client, podTarget, options.remotePort)
  try {
    if (options.localPort !== undefined) {
      tunnel = await startLocalForward({
        port: options.localPort,
        remotePort: options.remotePort,
        connect: (port) => openPodStream(client, podTarget, port),
      })
      if (tunnel.fellBack && options.localPort !== 0)
        say(io, `port ${options.localPort} is busy; the tunnel uses ${tunnel.port}`)
      // Said once, for the person at the terminal; a script running `ssh -- CMD` keeps a quiet stderr.
      if (io.stdin.isTTY || tunnel.fellBack) {
        say(
          io,
          `tunnel: 127.0.0.1:${tunnel.port} -> ${target.pod.name}:${options.remotePort} ` +
            `(scp -P ${tunnel.port} ${options.user}@127.0.0.1:/work/…)`,
        )
      }
    }

    const hostKeys = hostKeyVerifier({
      knownHostsFile,
      alias,
      hostLabel: target.pod.name,
      acceptNew: options.acceptNewHostKey,
      io,
      prompter: deps.prompter,
    })
    const connection = await connectSsh({
      sock,
      username: options.user,
      credentials: sshCredentials,
      verifyHostKey: hostKeys.verify,
      // A person may take a while to answer the host key question.
      readyTimeoutMs: deps.prompter.canPrompt ? 300_000 : 30_000,
      logger: deps.logger,
    }).catch((error: unknown) => {
      if (hostKeys.verdict() === 'rejected-new') {
        throw new AccessError('host key verification failed: the host key of the management pod is not known yet', {
          exitCode: ExitCode.hostKey,
          hint: deps.prompter.canPrompt
            ? 'answer yes to trust it'
            : 'check the fingerprint, then pass --accept-new-host-key (or run once in a terminal to confirm it)',
        })
      }
      if (hostKeys.verdict() === 'changed') {
        throw new AccessError(`the host key of ${target.pod.name} has changed`, {
          exitCode: ExitCode.hostKey,
          hint: `only if you know why (e.g. the pod's host keys were regenerated): akm-access ssh --forget-host-key`,
        })
      }
      throw error
    })

    try {
      const tty =
        options.tty === 'never'
          ? false
          : options.tty === 'force' || (options.command.length === 0 && Boolean(io.stdin.isTTY))
      const term = io.env.TERM && io.env.TERM !== 'dumb' ? io.env.TERM : 'xterm-256color'
      const size = io.stdout.columns && io.stdout.rows ? { cols: io.stdout.columns, rows: io.stdout.rows } : undefined
      const session = await connection.openSession({
        tty,
        term,
        ...(size ? { size } : {}),
        ...(options.command.length > 0 ? { command: options.command.join(' ') } : {}),
      })
      const end = await bridgeSession(io, session, { tty, escapeChar: options.escapeChar, hostLabel: target.pod.name })
      return exitCodeOf(end, target.pod.name)
    } finally {
      connection.end()
    }
  } finally {
    sock.destroy()
    await tunnel?.close()
  }
}

/** The key if there is one (asking for its passphrase when needed), else the password. */
async function usableCredentials(
  credentials: Credentials,
  options: SshOptions,
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
  let passphrase = options.passphraseFile ? readPassphrase(options.passphraseFile) : undefined
  for (let attempt = 0; ; attempt++) {
    const check = await preparePrivateKey(credentials.privateKey, passphrase)
    if (check.ok)
      return { privateKey: check.key, ...(passphrase ? { passphrase } : {}), ...(password ? { password } : {}) }
    const canAsk = deps.prompter.canPrompt && !options.passphraseFile && attempt < 3
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
