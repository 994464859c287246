/**
 * The SFTP half of the ssh2 adapter: ssh2's callback-style SFTPWrapper as a small promise API, with SFTP status
 * codes turned into errno-like codes the transfer code can act on. Only this file touches SFTPWrapper.
 *
 * What ssh2 does not do for us and this file does: rename over an existing file atomically (OpenSSH's
 * posix-rename extension; plain SFTP rename refuses to overwrite), know how large one read or write may be (ssh2
 * learns it from OpenSSH's limits extension but keeps it private), and tell a lost connection from a file error.
 */
import type { SFTPWrapper, Stats as Ssh2Stats } from 'ssh2'
import type { SshConnection } from './ssh-client.js'

export type RemoteFileType = 'file' | 'dir' | 'symlink' | 'other'

export interface RemoteStat {
  type: RemoteFileType
  size: number
  /** Permission bits only (0o7777). */
  mode: number
  /** Seconds since the epoch: SFTP v3 carries whole seconds. */
  mtime: number
  atime: number
}

export interface RemoteDirEntry {
  name: string
  stat: RemoteStat
}

/** errno-like names for SFTP status codes; ELOST: the connection is gone. */
export type SftpErrorCode = 'ENOENT' | 'EACCES' | 'EFAIL' | 'EUNSUPPORTED' | 'ELOST' | 'EOTHER'

export class SftpError extends Error {
  override readonly name = 'SftpError'
  constructor(
    message: string,
    readonly code: SftpErrorCode,
    readonly path: string,
  ) {
    super(message)
  }
}

export interface RemoteFile {
  /** Writes all of `data` at `position`. */
  write(data: Buffer, position: number): Promise<void>
  /** Reads up to `length` bytes at `position`; fewer at the end of the file (empty: end of file). */
  read(length: number, position: number): Promise<Buffer>
  setAttributes(attributes: { mode?: number; mtime?: number; atime?: number }): Promise<void>
  /** Asks the server to flush the file to disk (a no-op where the server lacks fsync@openssh.com). */
  sync(): Promise<void>
  close(): Promise<void>
}

export interface SftpClient {
  /** The largest read and write one request carries (what the server allows, ~255 KiB for OpenSSH). */
  readonly maxReadLength: number
  readonly maxWriteLength: number
  stat(path: string): Promise<RemoteStat>
  lstat(path: string): Promise<RemoteStat>
  readdir(path: string): Promise<RemoteDirEntry[]>
  readlink(path: string): Promise<string>
  symlink(target: string, path: string): Promise<void>
  mkdir(path: string, mode: number): Promise<void>
  rmdir(path: string): Promise<void>
  unlink(path: string): Promise<void>
  /** Replaces `to` atomically when the server can (OpenSSH), else removes it first. */
  rename(from: string, to: string): Promise<void>
  setAttributes(path: string, attributes: { mode?: number; mtime?: number; atime?: number }): Promise<void>
  /** Bytes available to the user on the file system holding `path`, when the server can tell. */
  availableBytes(path: string): Promise<number | undefined>
  /** `exclusive`: fail if the file exists (for temporary names that must be ours). */
  open(
    path: string,
    mode: 'read' | 'write',
    options?: { exclusive?: boolean; createMode?: number },
  ): Promise<RemoteFile>
  end(): void
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02). */
const status = { eof: 1, noSuchFile: 2, permissionDenied: 3, failure: 4, opUnsupported: 8 } as const

/** S_IFMT and friends, as SFTP's permissions field carries them. */
const fileTypeMask = 0o170000
const fileTypeBits = { file: 0o100000, dir: 0o040000, symlink: 0o120000 } as const

export async function openSftp(connection: SshConnection): Promise<SftpClient> {
  const sftp = await connection.sftp()
  let lost = false
  /** Calls waiting for an answer: a connection that dies under them may never answer, so they are failed here. */
  const pending = new Set<(error: Error) => void>()
  const markLost = () => {
    lost = true
    for (const reject of pending) reject(new Error('No response from server'))
    pending.clear()
  }
  void connection.closed.then(markLost)
  sftp.on('error', markLost)
  sftp.on('close', markLost)

  const fail = (error: Error & { code?: unknown }, path: string): SftpError => {
    const code: SftpErrorCode = lost
      ? 'ELOST'
      : error.code === status.noSuchFile
        ? 'ENOENT'
        : error.code === status.permissionDenied
          ? 'EACCES'
          : error.code === status.failure
            ? 'EFAIL'
            : error.code === status.opUnsupported
              ? 'EUNSUPPORTED'
              : /No response from server|Channel is closed|not open/i.test(error.message)
                ? 'ELOST'
                : 'EOTHER'
    const message =
      code === 'ELOST' ? 'the connection to the management pod was lost' : `${path}: ${describeStatus(error, code)}`
    return new SftpError(message, code, path)
  }
  /** Runs one ssh2 call; a synchronous throw (e.g. "No SFTP channel") is a rejection like any other. */
  const call = <T>(path: string, start: (callback: (error: Error | undefined | null, value?: T) => void) => void) =>
    new Promise<T>((resolve, reject) => {
      if (lost) return reject(fail(new Error('No response from server'), path))
      const abandon = (error: Error) => reject(fail(error, path))
      pending.add(abandon)
      try {
        start((error, value) => {
          pending.delete(abandon)
          if (error) reject(fail(error, path))
          else resolve(value as T)
        })
      } catch (error) {
        pending.delete(abandon)
        reject(fail(error as Error, path))
      }
    })

  const limits = sftp as unknown as { _maxReadLen?: number; _maxWriteLen?: number }
  const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {}
  const hasPosixRename = 'posix-rename@openssh.com' in extensions
  const hasStatvfs = 'statvfs@openssh.com' in extensions
  const hasFsync = 'fsync@openssh.com' in extensions

  const client: SftpClient = {
    maxReadLength: positiveOr(limits._maxReadLen, 32 * 1024),
    maxWriteLength: positiveOr(limits._maxWriteLen, 32 * 1024),
    stat: (path) => call<Ssh2Stats>(path, (cb) => sftp.stat(path, cb)).then(toRemoteStat),
    lstat: (path) => call<Ssh2Stats>(path, (cb) => sftp.lstat(path, cb)).then(toRemoteStat),
    readdir: (path) =>
      call<{ filename: string; attrs: Ssh2Stats }[]>(path, (cb) => sftp.readdir(path, cb)).then((list) =>
        list
          .filter((entry) => entry.filename !== '.' && entry.filename !== '..')
          .map((entry) => ({ name: entry.filename, stat: toRemoteStat(entry.attrs) })),
      ),
    readlink: (path) => call<string>(path, (cb) => sftp.readlink(path, cb)),
    symlink: (target, path) => call<void>(path, (cb) => sftp.symlink(target, path, cb)),
    mkdir: (path, mode) => call<void>(path, (cb) => sftp.mkdir(path, { mode }, cb)),
    rmdir: (path) => call<void>(path, (cb) => sftp.rmdir(path, cb)),
    unlink: (path) => call<void>(path, (cb) => sftp.unlink(path, cb)),
    async rename(from, to) {
      if (hasPosixRename) return call<void>(to, (cb) => sftp.ext_openssh_rename(from, to, cb))
      // Plain SFTP rename fails when the target exists: remove it first (not atomic, but the best we can do).
      await call<void>(to, (cb) => sftp.unlink(to, cb)).catch((error: SftpError) => {
        if (error.code !== 'ENOENT') throw error
      })
      return call<void>(to, (cb) => sftp.rename(from, to, cb))
    },
    setAttributes: (path, attributes) => call<void>(path, (cb) => sftp.setstat(path, toAttributes(attributes), cb)),
    async availableBytes(path) {
      if (!hasStatvfs) return undefined
      const info = await call<{ bavail?: number; frsize?: number; bsize?: number }>(path, (cb) =>
        sftp.ext_openssh_statvfs(path, cb),
      ).catch(() => undefined)
      if (!info || info.bavail === undefined) return undefined
      return Number(info.bavail) * Number(info.frsize || info.bsize || 0)
    },
    async open(path, mode, options = {}) {
      const flags = mode === 'read' ? 'r' : options.exclusive ? 'wx' : 'w'
      const handle = await call<Buffer>(path, (cb) =>
        sftp.open(path, flags, mode === 'write' ? { mode: options.createMode ?? 0o600 } : {}, cb),
      )
      return remoteFile(sftp, handle, path, call, hasFsync)
    },
    end: () => sftp.end(),
  }
  return client
}

function remoteFile(
  sftp: SFTPWrapper,
  handle: Buffer,
  path: string,
  call: <T>(
    path: string,
    start: (callback: (error: Error | undefined | null, value?: T) => void) => void,
  ) => Promise<T>,
  hasFsync: boolean,
): RemoteFile {
  return {
    write: (data, position) => call<void>(path, (cb) => sftp.write(handle, data, 0, data.length, position, cb)),
    read: (length, position) =>
      new Promise<Buffer>((resolve, reject) => {
        const buffer = Buffer.allocUnsafe(length)
        call<Buffer>(path, (cb) =>
          sftp.read(handle, buffer, 0, length, position, (error, bytesRead) =>
            error && (error as Error & { code?: number }).code === status.eof
              ? cb(undefined, Buffer.alloc(0))
              : cb(error, buffer.subarray(0, bytesRead)),
          ),
        ).then(resolve, reject)
      }),
    setAttributes: (attributes) => call<void>(path, (cb) => sftp.fsetstat(handle, toAttributes(attributes), cb)),
    sync: () => (hasFsync ? call<void>(path, (cb) => sftp.ext_openssh_fsync(handle, cb)) : Promise.resolve()),
    close: () => call<void>(path, (cb) => sftp.close(handle, cb)),
  }
}

function toRemoteStat(stats: Ssh2Stats): RemoteStat {
  const typeBits = (stats.mode ?? 0) & fileTypeMask
  const type: RemoteFileType =
    typeBits === fileTypeBits.file
      ? 'file'
      : typeBits === fileTypeBits.dir
        ? 'dir'
        : typeBits === fileTypeBits.symlink
          ? 'symlink'
          : 'other'
  return {
    type,
    size: Number(stats.size ?? 0),
    mode: (stats.mode ?? 0) & 0o7777,
    mtime: Number(stats.mtime ?? 0),
    atime: Number(stats.atime ?? 0),
  }
}

function toAttributes(attributes: { mode?: number; mtime?: number; atime?: number }) {
  return {
    ...(attributes.mode !== undefined ? { mode: attributes.mode } : {}),
    // SFTP sets both times or neither.
    ...(attributes.mtime !== undefined ? { mtime: attributes.mtime, atime: attributes.atime ?? attributes.mtime } : {}),
  }
}

function describeStatus(error: Error, code: SftpErrorCode): string {
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory'
    case 'EACCES':
      return 'permission denied'
    case 'EUNSUPPORTED':
      return 'operation not supported by the server'
    default:
      // OpenSSH says only "Failure" for everything else (a full disk, a name that is a folder, …).
      return error.message ? error.message.toLowerCase() : 'failure'
  }
}

function positiveOr(value: number | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : fallback
}
