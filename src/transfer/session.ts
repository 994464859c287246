/**
 * One SSH connection to the management pod for a whole transfer: an SFTP channel for the files and a second
 * channel running the pod-side hasher, opened together.
 */
import { PassThrough } from 'node:stream'
import { connectToPod, resolveSshAccess, type SshAccessOptions } from '../actions/ssh-access.js'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import { openSftp } from '../ssh/sftp.js'
import type { TransferSession } from './engine.js'
import { Slots } from './pipeline.js'
import { createRemoteHasher, HASHER_SCRIPT } from './remote-hasher.js'

/** Requests in flight over the connection: at ~255 KiB each, 16 MiB of buffers at most. */
const requestSlots = 64

export interface OpenTransfer {
  session: TransferSession
  /** Resolves when the connection closes, for whatever reason. */
  closed: Promise<void>
  close(): void
}

export async function openTransferSession(
  options: SshAccessOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter' | 'logger'>,
): Promise<OpenTransfer> {
  const { location, credentials } = await resolveSshAccess(options, deps)
  const connection = await connectToPod(location, credentials, options, deps)
  try {
    const [sftp, hasherSession] = await Promise.all([
      openSftp(connection).catch((error: Error) => {
        throw new AccessError(`the pod's sshd refused SFTP: ${error.message}`, {
          exitCode: ExitCode.sshUnreachable,
          hint: 'the pod needs `Subsystem sftp` in its sshd_config (the Akamas image has it)',
        })
      }),
      connection.openSession({ tty: false, command: HASHER_SCRIPT }).catch((error: Error) => {
        deps.logger.debug(`no hashing channel: ${error.message}`)
        return undefined
      }),
    ])
    hasherSession?.stderr?.resume()
    const hasher = createRemoteHasher(
      hasherSession
        ? { stdin: hasherSession.stdin, stdout: hasherSession.stdout, close: () => hasherSession.abort('done') }
        : unavailableChannel(),
      deps.logger,
    )
    // A connection that dies under the hasher may never end its output: answer whoever waits.
    void connection.closed.then(() => hasher.close())
    return {
      session: { sftp, hasher, podName: location.name, slots: new Slots(requestSlots), logger: deps.logger },
      closed: connection.closed,
      close() {
        hasher.close()
        sftp.end()
        connection.end()
      },
    }
  } catch (error) {
    connection.end()
    throw error
  }
}

function unavailableChannel() {
  // A hasher that has already ended: every file is verified by size.
  const stdout = new PassThrough()
  const stdin = new PassThrough()
  queueMicrotask(() => stdout.end())
  stdout.resume()
  return { stdin, stdout, close() {} }
}
