/**
 * A folder tree on either side, as the same list of entries: relative paths with `/`, type, size, permission bits
 * and modification time in whole seconds (all SFTP v3 carries, so both sides compare on the same footing).
 *
 * Symbolic links inside a tree are entries of their own (copied as links, as rsync -a and tar do); the paths named
 * on the command line are followed, as cp -H and scp do.
 */
import { lstat, readdir, readlink, stat } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { RemoteStat, SftpClient } from '../ssh/sftp.js'

export type EntryType = 'file' | 'dir' | 'symlink'

export interface TreeEntry {
  /** Relative to the tree's root, `/`-separated; '' is the root itself. */
  path: string
  type: EntryType
  size: number
  /** Permission bits (0o7777). */
  mode: number
  /** Whole seconds since the epoch. */
  mtime: number
  atime: number
  /** The link's target, for symlinks. */
  target?: string
}

export interface Tree {
  /** Entries in walk order: a folder before what it holds. */
  entries: TreeEntry[]
  /** Things that are neither files, folders nor links (sockets, devices, fifos): never copied. */
  skipped: string[]
}

/** Decides whether a relative path is left out (with everything under it, for a folder). */
export type PathFilter = (relativePath: string, type: EntryType) => boolean

const walkConcurrency = 8

interface Lister {
  /** The children of a folder (not following links), or the reason they cannot be read. */
  list(absolute: string): Promise<{ name: string; entry: Omit<TreeEntry, 'path'> | undefined }[]>
  join(base: string, name: string): string
}

async function walk(root: string, rootEntry: TreeEntry, lister: Lister, exclude?: PathFilter): Promise<Tree> {
  const entries: TreeEntry[] = [rootEntry]
  const skipped: string[] = []
  if (rootEntry.type !== 'dir') return { entries, skipped }
  // Breadth-first with a few listings in flight: over a remote link each listing is a round trip.
  let level: { absolute: string; relative: string }[] = [{ absolute: root, relative: '' }]
  while (level.length > 0) {
    const next: { absolute: string; relative: string }[] = []
    const results = await mapLimit(level, walkConcurrency, async (dir) => ({
      dir,
      children: await lister.list(dir.absolute),
    }))
    for (const { dir, children } of results) {
      children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      for (const child of children) {
        const relative = dir.relative === '' ? child.name : `${dir.relative}/${child.name}`
        if (!child.entry) {
          skipped.push(relative)
          continue
        }
        if (exclude?.(relative, child.entry.type)) continue
        entries.push({ path: relative, ...child.entry })
        if (child.entry.type === 'dir') next.push({ absolute: lister.join(dir.absolute, child.name), relative })
      }
    }
    level = next
  }
  return { entries, skipped }
}

// ---- local ----

/** Reads a local tree rooted at `root` (followed if it is a link). Throws the fs error if `root` is unusable. */
export async function scanLocalTree(root: string, exclude?: PathFilter): Promise<Tree> {
  const info = await stat(root)
  const rootEntry = localEntry(info, '')
  if (!rootEntry) throw Object.assign(new Error(`${root} is not a file or a folder`), { code: 'ENOTSUP' })
  return walk(
    root,
    rootEntry,
    {
      join,
      async list(absolute) {
        const names = await readdir(absolute)
        return mapLimit(names, 32, async (name) => {
          const path = join(absolute, name)
          const info = await lstat(path)
          const entry = localEntry(info, '')
          if (entry?.type === 'symlink') entry.target = await readlink(path)
          return { name, entry: entry && withoutPath(entry) }
        })
      },
    },
    exclude,
  )
}

/** A local stat as an entry; undefined for sockets, devices and the like. */
export function localEntry(
  info: {
    isFile(): boolean
    isDirectory(): boolean
    isSymbolicLink(): boolean
    size: number
    mode: number
    mtimeMs: number
    atimeMs: number
  },
  path: string,
): TreeEntry | undefined {
  const type: EntryType | undefined = info.isFile()
    ? 'file'
    : info.isDirectory()
      ? 'dir'
      : info.isSymbolicLink()
        ? 'symlink'
        : undefined
  if (!type) return undefined
  return {
    path,
    type,
    size: type === 'file' ? info.size : 0,
    mode: info.mode & 0o7777,
    mtime: Math.floor(info.mtimeMs / 1000),
    atime: Math.floor(info.atimeMs / 1000),
  }
}

// ---- remote ----

/** Reads a pod tree rooted at `root` (followed if it is a link). Throws the SftpError if `root` is unusable. */
export async function scanRemoteTree(sftp: SftpClient, root: string, exclude?: PathFilter): Promise<Tree> {
  const rootEntry = remoteEntry(await sftp.stat(root), '')
  if (!rootEntry) throw Object.assign(new Error(`${root} is not a file or a folder`), { code: 'ENOTSUP' })
  return walk(
    root,
    rootEntry,
    {
      join: (base, name) => posix.join(base, name),
      async list(absolute) {
        const children = await sftp.readdir(absolute)
        return mapLimit(children, 16, async (child) => {
          const entry = remoteEntry(child.stat, '')
          if (entry?.type === 'symlink') entry.target = await sftp.readlink(posix.join(absolute, child.name))
          return { name: child.name, entry: entry && withoutPath(entry) }
        })
      },
    },
    exclude,
  )
}

export function remoteEntry(info: RemoteStat, path: string): TreeEntry | undefined {
  if (info.type === 'other') return undefined
  return {
    path,
    type: info.type,
    size: info.type === 'file' ? info.size : 0,
    mode: info.mode,
    mtime: info.mtime,
    atime: info.atime,
  }
}

function withoutPath(entry: TreeEntry): Omit<TreeEntry, 'path'> {
  const { path: _path, ...rest } = entry
  return rest
}

/**
 * Maps with at most `limit` calls in flight, keeping the order of `items`. After a failure no new call starts
 * (the ones in flight finish), and the first failure is thrown once they have.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, map: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  let failed = false
  let firstError: unknown
  const worker = async () => {
    while (next < items.length && !failed) {
      const index = next++
      try {
        results[index] = await map(items[index]!)
      } catch (error) {
        if (!failed) firstError = error
        failed = true
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
  if (failed) throw firstError
  return results
}
