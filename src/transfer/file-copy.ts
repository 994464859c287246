/**
 * One file, either way, so that its final name only ever holds a complete, verified copy: the bytes go to a
 * temporary name in the same folder (`.NAME.akm-XXXXXX.part`), are checked (size, and SHA-256 computed on both sides
 * where the pod can), get their mode and times, and only then are renamed over the final name in one step. On any
 * failure, or Ctrl-C, the temporary file is removed.
 */
import { randomBytes } from 'node:crypto'
import { chmod, type FileHandle, open, rename, rm, stat, utimes } from 'node:fs/promises'
import { basename, dirname, join, posix } from 'node:path'
import type { Logger } from '../log.js'
import { type SftpClient, SftpError } from '../ssh/sftp.js'
import { isCancellation } from './abort.js'
import { changedWhileCopying, localFileError, remoteFileError, verificationFailed } from './errors.js'
import {
  ChangedWhileCopying,
  type PipelineResult,
  receiveFileContent,
  type Slots,
  sendFileContent,
} from './pipeline.js'
import type { RemoteHasher } from './remote-hasher.js'

export interface CopyContext {
  sftp: SftpClient
  hasher: RemoteHasher
  slots: Slots
  signal: AbortSignal
  podName: string
  logger: Logger
  /** Bytes moved, as they are acknowledged (for progress). */
  onBytes(bytes: number): void
}

export interface FileAttributes {
  mode: number
  /** Seconds. */
  mtime: number
  atime: number
}

export interface CopiedFile {
  bytes: number
  verified: 'sha256' | 'size'
}

/** Matches our temporary names, so that sync can tell leftovers of an interrupted run from the user's files. */
export const TEMP_NAME_PATTERN = /^\..+\.akm-[0-9a-z]{6}\.part$/

export function tempName(finalName: string): string {
  // Stay well under NAME_MAX (255 bytes) whatever the final name's length.
  const base = Buffer.from(finalName).length > 200 ? Buffer.from(finalName).subarray(0, 200).toString() : finalName
  const suffix = randomBytes(6)
    .map((byte) => byte % 36)
    .reduce((text, digit) => text + digit.toString(36), '')
  return `.${base}.akm-${suffix}.part`
}

/** Local file → pod. */
export async function uploadFile(
  context: CopyContext,
  localPath: string,
  remotePath: string,
  attributes: FileAttributes,
): Promise<CopiedFile> {
  const { sftp, podName } = context
  let source: FileHandle
  try {
    source = await open(localPath, 'r')
  } catch (error) {
    throw localFileError(error, 'read', localPath)
  }
  try {
    const size = (await source.stat()).size
    const temp = posix.join(posix.dirname(remotePath), tempName(posix.basename(remotePath)))
    const target = await sftp
      .open(temp, 'write', { exclusive: true, createMode: 0o600 })
      .catch((error: unknown) => rethrowRemote(error, 'create a file in', posix.dirname(remotePath), podName))
    let committed = false
    try {
      let sent: PipelineResult
      try {
        sent = await sendFileContent(source, target, size, pipelineOptions(context, sftp.maxWriteLength))
        await target.setAttributes(attributes)
      } catch (error) {
        await target.close().catch(() => {})
        throw await explainUploadFailure(context, error, localPath, remotePath, size)
      }
      await target.close().catch((error: unknown) => rethrowRemote(error, 'write', remotePath, podName))
      const [remoteHash, written] = await Promise.all([
        context.hasher.hash(temp),
        sftp.lstat(temp).catch((error: unknown) => rethrowRemote(error, 'check', remotePath, podName)),
      ])
      if (written.size !== sent.bytes) {
        throw verificationFailed(remotePath, `${written.size} bytes arrived of ${sent.bytes}`)
      }
      if (remoteHash !== undefined && remoteHash !== sent.sha256) {
        throw verificationFailed(remotePath, 'the SHA-256 in the pod differs from the one sent')
      }
      await sftp.rename(temp, remotePath).catch((error: unknown) => rethrowRemote(error, 'write', remotePath, podName))
      committed = true
      return { bytes: sent.bytes, verified: remoteHash === undefined ? 'size' : 'sha256' }
    } finally {
      if (!committed) await sftp.unlink(temp).catch(() => {})
    }
  } finally {
    await source.close().catch(() => {})
  }
}

/** Pod file → local. `size` is what the pod reported for it when the copy was planned. */
export async function downloadFile(
  context: CopyContext,
  remotePath: string,
  localPath: string,
  attributes: FileAttributes & { size: number },
): Promise<CopiedFile> {
  const { sftp, podName } = context
  const source = await sftp
    .open(remotePath, 'read')
    .catch((error: unknown) => rethrowRemote(error, 'read', remotePath, podName))
  // The pod hashes the file while we read it: its answer is ready about when our copy is.
  const remoteHash = context.hasher.hash(remotePath)
  try {
    const temp = join(dirname(localPath), tempName(basename(localPath)))
    let target: FileHandle
    try {
      target = await open(temp, 'wx', 0o600)
    } catch (error) {
      throw localFileError(error, 'create a file in', dirname(localPath))
    }
    let committed = false
    try {
      let received: PipelineResult
      try {
        received = await receiveFileContent(
          source,
          target,
          attributes.size,
          pipelineOptions(context, sftp.maxReadLength),
        )
      } catch (error) {
        await target.close().catch(() => {})
        if (error instanceof SftpError) throw remoteFileError(error, 'read', remotePath, podName)
        if (error instanceof ChangedWhileCopying) throw changedWhileCopying(`:${remotePath}`, error.message)
        if (isCancellation(error)) throw error
        throw localFileError(error, 'write', localPath)
      }
      try {
        await target.close()
        await chmod(temp, attributes.mode)
        await utimes(temp, attributes.atime, attributes.mtime)
      } catch (error) {
        throw localFileError(error, 'write', localPath)
      }
      const written = (await stat(temp)).size
      if (written !== received.bytes)
        throw verificationFailed(localPath, `${written} bytes on disk of ${received.bytes}`)
      const expected = await remoteHash
      if (expected !== undefined && expected !== received.sha256) {
        throw changedWhileCopying(`:${remotePath}`, 'its SHA-256 in the pod differs from the bytes received')
      }
      try {
        await rename(temp, localPath)
      } catch (error) {
        throw localFileError(error, 'write', localPath)
      }
      committed = true
      return { bytes: received.bytes, verified: expected === undefined ? 'size' : 'sha256' }
    } finally {
      if (!committed) await rm(temp, { force: true }).catch(() => {})
    }
  } finally {
    await source.close().catch(() => {})
  }
}

function pipelineOptions(context: CopyContext, chunkSize: number) {
  return { chunkSize, slots: context.slots, signal: context.signal, onBytes: context.onBytes }
}

function rethrowRemote(error: unknown, doing: string, path: string, podName: string): never {
  if (error instanceof SftpError) throw remoteFileError(error, doing, path, podName)
  throw error
}

/**
 * OpenSSH reports a full disk as a bare "Failure": ask the pod how much room is left before saying which. Local
 * read errors and Ctrl-C pass through as what they are.
 */
async function explainUploadFailure(
  context: CopyContext,
  error: unknown,
  localPath: string,
  remotePath: string,
  size: number,
): Promise<unknown> {
  if (isCancellation(error)) return error
  if (error instanceof ChangedWhileCopying) return changedWhileCopying(localPath, error.message)
  if (!(error instanceof SftpError)) return localFileError(error, 'read', localPath)
  if (error.code === 'EFAIL') {
    const available = await context.sftp.availableBytes(posix.dirname(remotePath))
    if (available !== undefined && available < Math.max(size, 1024 * 1024)) {
      return remoteFileError(
        new SftpError(`${remotePath}: no space left in the pod (${available} bytes free)`, 'EFAIL', remotePath),
        'write',
        remotePath,
        context.podName,
      )
    }
  }
  return remoteFileError(error, 'write', remotePath, context.podName)
}
