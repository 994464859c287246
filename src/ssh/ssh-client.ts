/**
 * The one adapter around ssh2: connect over any Duplex (the port-forward stream, no local listener needed), verify
 * the host key through our own known_hosts logic, authenticate with what the Secret holds (key, then password,
 * then keyboard-interactive answered with the password), and open shells or commands as RemoteSessions.
 */
import type { Duplex } from 'node:stream'
import type { Client, ClientChannel, ConnectConfig, SFTPWrapper } from 'ssh2'
import { AccessError, ExitCode } from '../errors.js'
import type { Logger } from '../log.js'
import { type RemoteSession, type SessionEnd, signalExitCode, type TerminalSize } from '../session/remote-session.js'

/**
 * Starts importing ssh2 (~45 ms of CPU) now, so that it runs while the API requests are on the network instead of
 * after them. Node's module cache makes the later `import('ssh2')` the same load; a failure surfaces there.
 */
export function preloadSsh2(): void {
  import('ssh2').catch(() => {})
}

export interface SshCredentials {
  privateKey?: string
  passphrase?: string
  password?: string
}

export interface SshConnectOptions {
  sock: Duplex
  username: string
  credentials: SshCredentials
  /** Decides whether to trust the server's host key (raw SSH public key blob); may prompt. */
  verifyHostKey: (blob: Buffer) => Promise<boolean>
  /** SSH-level keepalives: traffic that also keeps the port-forward's WebSocket alive. */
  keepaliveIntervalMs?: number
  readyTimeoutMs?: number
  logger?: Logger
}

export interface SshConnection {
  openSession(options: { tty: boolean; term?: string; size?: TerminalSize; command?: string }): Promise<RemoteSession>
  sftp(): Promise<SFTPWrapper>
  /** Resolves when the connection closes, for whatever reason. */
  readonly closed: Promise<void>
  end(): void
}

export async function connectSsh(options: SshConnectOptions): Promise<SshConnection> {
  const { Client } = (await import('ssh2')).default
  const client: Client = new Client()
  const { credentials } = options
  const tried: string[] = []
  let hostKeyRejected = false
  let verifyError: unknown

  const config: ConnectConfig = {
    sock: options.sock,
    username: options.username,
    keepaliveInterval: options.keepaliveIntervalMs ?? 15_000,
    keepaliveCountMax: 3,
    readyTimeout: options.readyTimeoutMs ?? 30_000,
    tryKeyboard: credentials.password !== undefined,
    hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
      options.verifyHostKey(key).then(
        (trusted) => {
          hostKeyRejected = !trusted
          verify(trusted)
        },
        (error: unknown) => {
          // e.g. Ctrl-C at the question: that, not a verification failure, is what the user should see.
          verifyError = error
          hostKeyRejected = true
          verify(false)
        },
      )
    },
    // Follow the methods the server still offers, so that no attempt is wasted on sshd's MaxAuthTries.
    authHandler: (methodsLeft, _partialSuccess, next) => {
      const offered = (method: string) => methodsLeft === null || methodsLeft.includes(method as never)
      const username = options.username
      if (credentials.privateKey && !tried.includes('publickey') && offered('publickey')) {
        tried.push('publickey')
        return next({
          type: 'publickey',
          username,
          key: credentials.privateKey,
          ...(credentials.passphrase ? { passphrase: credentials.passphrase } : {}),
        })
      }
      if (credentials.password !== undefined && !tried.includes('password') && offered('password')) {
        tried.push('password')
        return next({ type: 'password', username, password: credentials.password })
      }
      if (
        credentials.password !== undefined &&
        !tried.includes('keyboard-interactive') &&
        offered('keyboard-interactive')
      ) {
        tried.push('keyboard-interactive')
        const password = credentials.password
        return next({
          type: 'keyboard-interactive',
          username,
          prompt: (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => password)),
        })
      }
      return next(false as never)
    },
    ...(options.logger?.enabled ? { debug: (line: string) => options.logger?.debug(`ssh2: ${line}`) } : {}),
  }

  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()))
  // One listener for the whole life of the client: ssh2 can emit several errors for one failure (the socket's,
  // then "Connection lost before handshake" when it closes), and an 'error' with no listener kills the process.
  // The first one during the handshake decides; the rest only reach --debug.
  let connecting: ((error: Error & { level?: string }) => void) | undefined
  client.on('error', (error: Error & { level?: string }) => {
    if (connecting) connecting(error)
    else options.logger?.debug(`ssh connection error: ${error.message}`)
  })
  await new Promise<void>((resolve, reject) => {
    connecting = (error) => {
      connecting = undefined
      reject(verifyError ?? sshConnectError(error, { hostKeyRejected, tried }))
    }
    client.once('ready', () => {
      connecting = undefined
      resolve()
    })
    client.connect(config)
  })

  return {
    closed,
    end: () => client.end(),
    sftp: () => new Promise((resolve, reject) => client.sftp((error, sftp) => (error ? reject(error) : resolve(sftp)))),
    openSession: (session) => openSession(client, closed, session),
  }
}

/**
 * The server's host key (raw SSH public key blob), after a complete key exchange — so the server has proved it holds
 * the private half — and without authenticating: nothing secret is sent. The connection is closed afterwards; `sock`
 * is consumed. For `doctor`, which compares the key with known_hosts itself.
 */
export async function fetchHostKey(
  sock: Duplex,
  options: { timeoutMs: number; logger?: Logger | undefined },
): Promise<Buffer> {
  const { Client } = (await import('ssh2')).default
  const client: Client = new Client()
  let offered: Buffer | undefined
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false
    const settle = (error: Error | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (error || !offered) {
        client.destroy()
        sock.destroy()
        reject(error ?? new Error('no host key'))
        return
      }
      // Out of the event handler: ssh2 requests the userauth service right after 'handshake'.
      setImmediate(() => client.end())
      resolve(offered)
    }
    const unreachable = (message: string, cause?: unknown) =>
      new AccessError(message, {
        exitCode: ExitCode.sshUnreachable,
        hint: 'check that sshd runs in the pod and completes a key exchange (kubectl logs shows its messages)',
        ...(cause === undefined ? {} : { cause }),
      })
    const timer = setTimeout(
      () => settle(unreachable(`the SSH key exchange did not finish within ${options.timeoutMs / 1000}s`)),
      options.timeoutMs,
    )
    client.once('handshake', () => settle(undefined))
    client.on('error', (error: Error) =>
      settle(unreachable(`the SSH key exchange with the management pod failed: ${error.message}`, error)),
    )
    client.once('close', () => settle(unreachable('sshd closed the connection during the key exchange')))
    client.connect({
      sock,
      username: 'akm-access',
      readyTimeout: options.timeoutMs,
      hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
        offered = Buffer.from(key)
        verify(true)
      },
      // Never reached (the connection ends at 'handshake'); declines rather than trying "none".
      authHandler: (_methodsLeft, _partialSuccess, next) => next(false as never),
      ...(options.logger?.enabled ? { debug: (line: string) => options.logger?.debug(`ssh2: ${line}`) } : {}),
    })
  })
}

function sshConnectError(error: Error & { level?: string }, state: { hostKeyRejected: boolean; tried: string[] }) {
  if (state.hostKeyRejected) {
    return new AccessError('host key verification failed', {
      exitCode: ExitCode.hostKey,
      hint: 'the host key was not accepted; see the message above',
      cause: error,
    })
  }
  // The pod stream's own failure (nothing listens on the port, the pod went away) already says what and why.
  if (error instanceof AccessError) return error
  if (error.level === 'client-authentication') {
    const methods = state.tried.length > 0 ? state.tried.join(', ') : 'no usable method'
    return new AccessError(`sshd in the management pod rejected the credentials (tried ${methods})`, {
      exitCode: ExitCode.sshAuth,
      hint: 'the Secret may be out of date with the pod (restart the pod after changing it), or password login is disabled',
      cause: error,
    })
  }
  if (error.level === 'client-timeout') {
    return new AccessError('the SSH handshake with the management pod timed out', {
      exitCode: ExitCode.sshUnreachable,
      hint: 'check that sshd runs in the pod: akm-access doctor',
      cause: error,
    })
  }
  if (/privatekey|private key|passphrase|Unsupported key format|Cannot parse/i.test(error.message)) {
    return new AccessError(`the private key cannot be used: ${error.message}`, {
      exitCode: ExitCode.badCredentials,
      hint: 'the key must be an OpenSSH, PEM (RSA/EC) or PuTTY v2 private key; pass --passphrase-file for an encrypted one',
      cause: error,
    })
  }
  return new AccessError(`the SSH connection to the management pod failed: ${error.message}`, {
    exitCode: ExitCode.sshUnreachable,
    hint: 'check that sshd runs in the pod and listens on the remote port: akm-access doctor',
    cause: error,
  })
}

function openSession(
  client: Client,
  closed: Promise<void>,
  options: { tty: boolean; term?: string; size?: TerminalSize; command?: string },
): Promise<RemoteSession> {
  return new Promise((resolve, reject) => {
    const pty = options.tty
      ? { term: options.term ?? 'xterm-256color', rows: options.size?.rows ?? 24, cols: options.size?.cols ?? 80 }
      : undefined
    const onChannel = (error: Error | undefined, channel: ClientChannel) => {
      if (error)
        return reject(
          new AccessError(`the SSH server refused the session: ${error.message}`, {
            exitCode: ExitCode.sshUnreachable,
          }),
        )
      resolve(channelSession(channel, closed, options.tty))
    }
    if (options.command !== undefined) {
      client.exec(options.command, pty ? { pty } : {}, onChannel)
    } else if (pty) {
      client.shell(pty, onChannel)
    } else {
      client.shell(false, onChannel)
    }
  })
}

function channelSession(channel: ClientChannel, connectionClosed: Promise<void>, tty: boolean): RemoteSession {
  let exit: SessionEnd | undefined
  let aborted: string | undefined
  let finish: () => void = () => {}
  channel.on('exit', (code: number | null, signal?: string) => {
    if (exit) return
    if (code !== null && code !== undefined) exit = { kind: 'exit', code }
    else if (signal) exit = { kind: 'signal', signal, code: signalExitCode(signal) }
  })
  const ended = new Promise<SessionEnd>((resolve) => {
    finish = () => {
      if (aborted !== undefined) resolve({ kind: 'aborted', reason: aborted })
      else resolve(exit ?? { kind: 'lost', reason: 'the connection to the management pod was lost' })
    }
    channel.once('close', finish)
    void connectionClosed.then(finish)
  })
  return {
    stdout: channel,
    stderr: tty ? undefined : channel.stderr,
    stdin: channel,
    resize: (size) => channel.setWindow(size.rows, size.cols, 0, 0),
    ended,
    abort(reason) {
      if (aborted !== undefined) return
      aborted = reason
      // A signal to us is passed on to the remote command first (RFC 4254 §6.9; sshd >= 7.9): without a terminal,
      // closing the channel alone leaves a command that does not write (a sleep, a server) running in the pod.
      const signal = /^SIG(INT|TERM|HUP|PIPE)$/.exec(reason)?.[1]
      if (signal) sendSignal(channel, signal)
      channel.close()
      // sshd answers our close only once the remote command has ended, which may be never: we are done now (the
      // connection is ended right after, which tells sshd the rest).
      finish()
    },
  }
}

/**
 * ssh2's `channel.signal()` stays silent once our side has sent EOF (stdin ended), but RFC 4254 allows a "signal"
 * request until the channel closes: `ssh -- CMD < file` must be interruptible too. So the request goes through
 * ssh2's protocol object whenever the channel is still open for requests.
 */
function sendSignal(channel: ClientChannel, signal: string): void {
  const internals = channel as unknown as {
    outgoing?: { state?: string; id?: number }
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } }
  }
  const state = internals.outgoing?.state
  const id = internals.outgoing?.id
  if ((state === 'open' || state === 'eof') && id !== undefined && internals._client?._protocol?.signal) {
    internals._client._protocol.signal(id, signal)
  } else {
    channel.signal(signal)
  }
}

export type KeyCheck =
  | { ok: true; key: string }
  | { ok: false; reason: 'needs-passphrase' | 'bad-passphrase' | 'unusable'; message: string }

/**
 * Checks that ssh2 can use a private key before connecting, converting what it cannot read but Node can (PKCS#8
 * RSA and EC keys, as some tools store them) into PKCS#1/SEC1 PEM, and telling an encrypted key from a broken one.
 */
export async function preparePrivateKey(key: string, passphrase: string | undefined): Promise<KeyCheck> {
  const { utils } = (await import('ssh2')).default
  const parsed = utils.parseKey(key, passphrase)
  if (!(parsed instanceof Error)) return { ok: true, key }
  if (/no passphrase given/i.test(parsed.message))
    return { ok: false, reason: 'needs-passphrase', message: parsed.message }
  if (/bad passphrase|integrity check failed/i.test(parsed.message)) {
    return { ok: false, reason: 'bad-passphrase', message: 'the passphrase for the private key is wrong' }
  }
  if (/BEGIN (ENCRYPTED )?PRIVATE KEY/.test(key)) return convertPkcs8(key, passphrase)
  return { ok: false, reason: 'unusable', message: parsed.message }
}

async function convertPkcs8(key: string, passphrase: string | undefined): Promise<KeyCheck> {
  const { createPrivateKey } = await import('node:crypto')
  try {
    const object = createPrivateKey(passphrase === undefined ? { key } : { key, passphrase })
    const type = object.asymmetricKeyType
    if (type === 'rsa') return { ok: true, key: object.export({ type: 'pkcs1', format: 'pem' }).toString() }
    if (type === 'ec') return { ok: true, key: object.export({ type: 'sec1', format: 'pem' }).toString() }
    if (type === 'ed25519') return { ok: true, key: ed25519ToOpenSsh(object) }
    return { ok: false, reason: 'unusable', message: `unsupported PKCS#8 key type ${type}` }
  } catch (error) {
    const message = (error as Error).message
    // OpenSSL, asked for a passphrase nobody gave, says "interrupted or cancelled".
    const unanswered = /passphrase|interrupted or cancelled/i.test(message) || /BEGIN ENCRYPTED PRIVATE KEY/.test(key)
    if (unanswered && passphrase === undefined) return { ok: false, reason: 'needs-passphrase', message }
    if (/bad decrypt|passphrase/i.test(message))
      return { ok: false, reason: 'bad-passphrase', message: 'the passphrase for the private key is wrong' }
    return { ok: false, reason: 'unusable', message }
  }
}

/**
 * Node cannot export Ed25519 keys in OpenSSH's format and ssh2 cannot read PKCS#8, so build the unencrypted
 * `openssh-key-v1` container by hand (PROTOCOL.key in OpenSSH's sources).
 */
function ed25519ToOpenSsh(object: import('node:crypto').KeyObject): string {
  const jwk = object.export({ format: 'jwk' }) as { d: string; x: string }
  const seed = Buffer.from(jwk.d, 'base64url')
  const publicKey = Buffer.from(jwk.x, 'base64url')
  const string = (data: Buffer | string) => {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    return Buffer.concat([length, bytes])
  }
  const uint32 = (value: number) => {
    const buffer = Buffer.alloc(4)
    buffer.writeUInt32BE(value)
    return buffer
  }
  const publicBlob = Buffer.concat([string('ssh-ed25519'), string(publicKey)])
  const check = uint32(0x5eed5eed)
  let privateSection = Buffer.concat([
    check,
    check,
    string('ssh-ed25519'),
    string(publicKey),
    string(Buffer.concat([seed, publicKey])),
    string(''),
  ])
  const padding = Buffer.from(Array.from({ length: (8 - (privateSection.length % 8)) % 8 }, (_, i) => i + 1))
  privateSection = Buffer.concat([privateSection, padding])
  const body = Buffer.concat([
    Buffer.from('openssh-key-v1\0'),
    string('none'),
    string('none'),
    string(''),
    uint32(1),
    string(publicBlob),
    string(privateSection),
  ])
  const lines = body.toString('base64').match(/.{1,70}/g) ?? []
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`
}
