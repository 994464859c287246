/**
 * The two ends of a transfer behind one small interface, so that planning (cp's destination rules, sync's
 * comparison) is written once for both directions. Errors come out already explained: exit 17 for the local side,
 * 18 for the pod's.
 */
import { stat } from 'node:fs/promises'
import { basename, join, posix, resolve } from 'node:path'
import { AccessError, ExitCode } from '../errors.js'
import { type SftpClient, SftpError } from '../ssh/sftp.js'
import { localFileError, remoteFileError } from './errors.js'
import { showRemote } from './remote-path.js'
import {
  localEntry,
  type PathFilter,
  remoteEntry,
  scanLocalTree,
  scanRemoteTree,
  type Tree,
  type TreeEntry,
} from './tree.js'

export interface Side {
  readonly kind: 'local' | 'remote'
  /** What the entry at `path` is, following links; undefined when nothing is there. */
  stat(path: string): Promise<TreeEntry | undefined>
  /** The tree at `path` (which must exist). */
  scan(path: string, exclude?: PathFilter): Promise<Tree>
  join(base: string, relative: string): string
  /** The name a copy of `path` gets inside a folder. */
  nameOf(path: string): string
  /** How the user would write `path`. */
  show(path: string): string
}

export function localSide(): Side {
  return {
    kind: 'local',
    async stat(path) {
      let entry: TreeEntry | undefined
      try {
        entry = localEntry(await stat(path), '')
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === 'ENOENT') return undefined
        throw localFileError(error, 'read', path)
      }
      // Something is there, but not a file, folder or link: it must not pass for "nothing", or a copy onto it would
      // rename a regular file over a device or FIFO (cp :log /dev/null, as root, would replace /dev/null).
      if (!entry) throw notCopyable(path, 'local')
      return entry
    },
    async scan(path, exclude) {
      try {
        return await scanLocalTree(path, exclude)
      } catch (error) {
        throw localFileError(error, 'read', (error as { path?: string }).path ?? path)
      }
    },
    join: (base, relative) => (relative === '' ? base : join(base, ...relative.split('/'))),
    nameOf: (path) => basename(resolve(path)),
    show: (path) => path,
  }
}

export function remoteSide(sftp: SftpClient, podName: string): Side {
  const explain = (doing: string, path: string) => (error: unknown) => {
    throw error instanceof SftpError ? remoteFileError(error, doing, error.path || path, podName) : error
  }
  return {
    kind: 'remote',
    async stat(path) {
      let entry: TreeEntry | undefined
      try {
        entry = remoteEntry(await sftp.stat(path), '')
      } catch (error) {
        if (error instanceof SftpError && error.code === 'ENOENT') return undefined
        return explain('read', path)(error)
      }
      if (!entry) throw notCopyable(path, 'remote')
      return entry
    },
    scan: (path, exclude) => scanRemoteTree(sftp, path, exclude).catch(explain('read', path)),
    join: (base, relative) => (relative === '' ? base : posix.join(base, relative)),
    nameOf: (path) => posix.basename(path),
    show: showRemote,
  }
}

/** A device, FIFO or socket named as a source or destination: copies go by renaming a verified file into place. */
function notCopyable(path: string, side: 'local' | 'remote'): AccessError {
  return new AccessError(`${side === 'local' ? path : showRemote(path)} is not a regular file, folder or link`, {
    exitCode: side === 'local' ? ExitCode.local : ExitCode.remoteFile,
    hint: 'cp and sync copy files, folders and links (a device, FIFO or socket is neither); to stream one: akm-access shell -- cat /work/FILE > DEST',
  })
}
