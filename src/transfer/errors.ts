/**
 * What goes wrong in a copy, said so that the user knows which side and what to do: local file problems exit 17,
 * pod file problems 18, a lost connection 255 (as ssh), Ctrl-C 130.
 */
import { AccessError, ExitCode } from '../errors.js'
import { SftpError } from '../ssh/sftp.js'
import { ChangedWhileCopying } from './pipeline.js'
import { showRemote } from './remote-path.js'

/** A local fs error (errno code) as a one-line message and exit 17. */
export function localFileError(error: unknown, doing: string, path: string): AccessError {
  const code = (error as NodeJS.ErrnoException)?.code
  const reason: Record<string, [string, string?]> = {
    ENOSPC: ['no space left on the local disk', 'free some space, or copy somewhere else'],
    EDQUOT: ['the disk quota is exceeded', 'free some space, or copy somewhere else'],
    EACCES: ['permission denied', 'check the permissions of the file and its folder'],
    EPERM: ['operation not permitted', 'check the permissions of the file and its folder'],
    EROFS: ['the file system is read-only', 'copy somewhere else'],
    ENOENT: ['no such file or directory', undefined],
    ENOTDIR: ['a part of the path is not a folder', undefined],
    EISDIR: ['it is a folder', undefined],
    EEXIST: ['it already exists', undefined],
    EMFILE: ['too many open files', 'raise the limit (ulimit -n) and try again'],
  }
  const [what, hint] = (code && reason[code]) || [(error as Error)?.message ?? String(error), undefined]
  return new AccessError(`cannot ${doing} ${path}: ${what}`, {
    exitCode: ExitCode.local,
    ...(hint ? { hint } : {}),
    cause: error,
  })
}

/** An SFTP error as a message and exit 18 (255 when the connection is gone). */
export function remoteFileError(error: SftpError, doing: string, path: string, podName: string): AccessError {
  if (error.code === 'ELOST') {
    return new AccessError(`the connection to pod ${podName} was lost`, {
      exitCode: ExitCode.connectionLost,
      hint: 'the pod may have been restarted; run the command again (finished files are complete, nothing is left half-written under its name)',
      cause: error,
    })
  }
  const what =
    error.code === 'ENOENT'
      ? 'no such file or directory'
      : error.code === 'EACCES'
        ? 'permission denied'
        : // OpenSSH's sftp-server answers ENAMETOOLONG and EINVAL with SSH_FX_BAD_MESSAGE ("bad message").
          /^bad message$/i.test(error.message.replace(/^.*?: /, ''))
          ? 'the name is too long, or not valid there'
          : error.message.replace(/^.*?: /, '')
  return new AccessError(`cannot ${doing} ${showRemote(path)} in pod ${podName}: ${what}`, {
    exitCode: ExitCode.remoteFile,
    ...(error.code === 'EACCES' ? { hint: 'the pod user (akamas) may not write there; /work is its own' } : {}),
    cause: error,
  })
}

export function changedWhileCopying(path: string, detail: string): AccessError {
  return new AccessError(`${path} changed while it was being copied (${detail})`, {
    exitCode: ExitCode.remoteFile,
    hint: 'copy it again once nothing writes to it',
  })
}

export function verificationFailed(path: string, detail: string): AccessError {
  return new AccessError(`the copy of ${path} did not verify: ${detail}`, {
    exitCode: ExitCode.remoteFile,
    hint: 'nothing was written under its name; run the command again (--debug shows more)',
  })
}

/** Errors already said well pass through; the rest are classified by where they came from. */
export function isExplained(error: unknown): error is AccessError {
  return error instanceof AccessError
}

export { ChangedWhileCopying, SftpError }
