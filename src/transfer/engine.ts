/**
 * Carries out a transfer plan (what cp and sync decided) in the order that keeps every step valid: deletions
 * (deepest first, so folders are empty when removed and a file can replace a folder), folders (parents first),
 * files (several at once: each costs a few round trips of its own, which overlap), links, and last the folders'
 * own modes and times (writing into a folder changes its time).
 */
import { chmod, lstat, mkdir, rm, symlink, utimes } from 'node:fs/promises'
import type { Logger } from '../log.js'
import { type SftpClient, SftpError } from '../ssh/sftp.js'
import { localFileError, remoteFileError } from './errors.js'
import { downloadFile, uploadFile } from './file-copy.js'
import type { Slots } from './pipeline.js'
import type { Progress } from './progress.js'
import type { RemoteHasher } from './remote-hasher.js'
import { type EntryType, mapLimit } from './tree.js'

export type Direction = 'upload' | 'download'

export interface PlannedFile {
  source: string
  dest: string
  /** How progress names it (relative to what the user named). */
  label: string
  size: number
  mode: number
  mtime: number
  atime: number
}

export interface Plan {
  direction: Direction
  deletes: { dest: string; type: EntryType; label: string }[]
  mkdirs: { dest: string; mode: number }[]
  files: PlannedFile[]
  symlinks: { dest: string; target: string }[]
  dirAttributes: { dest: string; mode: number; mtime: number; atime: number }[]
}

export function emptyPlan(direction: Direction): Plan {
  return { direction, deletes: [], mkdirs: [], files: [], symlinks: [], dirAttributes: [] }
}

/** What one SFTP connection offers a transfer. */
export interface TransferSession {
  sftp: SftpClient
  hasher: RemoteHasher
  podName: string
  slots: Slots
  logger: Logger
}

export interface TransferResult {
  files: number
  bytes: number
  /** Files whose copy was checked by SHA-256 on both sides (the others by size). */
  checksummed: number
  deleted: number
  symlinks: number
  folders: number
}

/** How many files are in flight at once: enough to hide per-file round trips, few enough to stay fair. */
const fileConcurrency = 8

export async function executePlan(
  plan: Plan,
  session: TransferSession,
  progress: Progress,
  signal: AbortSignal,
): Promise<TransferResult> {
  const ops = plan.direction === 'upload' ? remoteOps(session) : localOps()
  const result: TransferResult = { files: 0, bytes: 0, checksummed: 0, deleted: 0, symlinks: 0, folders: 0 }
  progress.start({ files: plan.files.length, bytes: plan.files.reduce((sum, file) => sum + file.size, 0) })

  for (const item of plan.deletes) {
    signal.throwIfAborted()
    await ops.remove(item.dest, item.type)
    result.deleted++
  }
  for (const dir of plan.mkdirs) {
    signal.throwIfAborted()
    await ops.mkdir(dir.dest, dir.mode)
    result.folders++
  }
  const context = {
    sftp: session.sftp,
    hasher: session.hasher,
    slots: session.slots,
    signal,
    podName: session.podName,
    logger: session.logger,
    onBytes: (bytes: number) => progress.bytes(bytes),
  }
  await mapLimit(plan.files, fileConcurrency, async (file) => {
    signal.throwIfAborted()
    progress.fileStarted(file.label)
    const copied =
      plan.direction === 'upload'
        ? await uploadFile(context, file.source, file.dest, file)
        : await downloadFile(context, file.source, file.dest, file)
    session.logger.debug(`copied ${file.label} (${copied.bytes} bytes, verified by ${copied.verified})`)
    result.files++
    result.bytes += copied.bytes
    if (copied.verified === 'sha256') result.checksummed++
    progress.fileDone()
  })
  for (const link of plan.symlinks) {
    signal.throwIfAborted()
    await ops.symlink(link.target, link.dest)
    result.symlinks++
  }
  for (const dir of plan.dirAttributes) {
    signal.throwIfAborted()
    await ops.setAttributes(dir.dest, dir)
  }
  return result
}

interface SideOps {
  remove(path: string, type: EntryType): Promise<void>
  /** Creates a folder, or accepts the folder already there; fails on anything else in its place. */
  mkdir(path: string, mode: number): Promise<void>
  symlink(target: string, path: string): Promise<void>
  setAttributes(path: string, attributes: { mode: number; mtime: number; atime: number }): Promise<void>
}

function remoteOps(session: TransferSession): SideOps {
  const { sftp, podName } = session
  const explain = (doing: string, path: string) => (error: unknown) => {
    throw error instanceof SftpError ? remoteFileError(error, doing, path, podName) : error
  }
  return {
    async remove(path, type) {
      await (type === 'dir' ? sftp.rmdir(path) : sftp.unlink(path)).catch((error: unknown) => {
        if (error instanceof SftpError && error.code === 'ENOENT') return
        explain('delete', path)(error)
      })
    },
    async mkdir(path, mode) {
      // Writable for us while we fill it; its own mode comes last.
      await sftp.mkdir(path, mode | 0o700).catch(async (error: unknown) => {
        const existing = await sftp.stat(path).catch(() => undefined)
        if (existing?.type === 'dir') return
        if (existing) explain('create the folder', path)(new SftpError(`${path}: not a folder`, 'EFAIL', path))
        explain('create the folder', path)(error)
      })
    },
    async symlink(target, path) {
      await sftp.unlink(path).catch(() => {})
      await sftp.symlink(target, path).catch(explain('create the link', path))
    },
    async setAttributes(path, attributes) {
      await sftp.setAttributes(path, attributes).catch(explain('set the mode and times of', path))
    },
  }
}

function localOps(): SideOps {
  return {
    async remove(path) {
      await rm(path, { recursive: true, force: true }).catch((error: unknown) => {
        throw localFileError(error, 'delete', path)
      })
    },
    async mkdir(path, mode) {
      try {
        await mkdir(path, { mode: mode | 0o700 })
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
          const existing = await lstat(path).catch(() => undefined)
          if (existing?.isDirectory()) return
        }
        throw localFileError(error, 'create the folder', path)
      }
    },
    async symlink(target, path) {
      try {
        await rm(path, { force: true })
        await symlink(target, path)
      } catch (error) {
        throw localFileError(error, 'create the link', path)
      }
    },
    async setAttributes(path, attributes) {
      try {
        await chmod(path, attributes.mode)
        await utimes(path, attributes.atime, attributes.mtime)
      } catch (error) {
        throw localFileError(error, 'set the mode and times of', path)
      }
    },
  }
}
