/**
 * What a one-way sync has to do: compare the source tree with the destination's and list the differences.
 *
 * A file is sent when it is new, or its size or modification time (whole seconds, all SFTP carries) differs; with
 * checksums, when its size or SHA-256 differs. A link is replaced when its target differs. What is only in the
 * destination is deleted with --delete (and always when it stands where a different kind of entry must go).
 */
import type { TreeEntry } from './tree.js'

export type ChangeKind = 'new' | 'changed' | 'delete'

export interface Change {
  kind: ChangeKind
  entry: TreeEntry
}

export interface SyncDiff {
  /** In the order they are to be carried out: deletions deepest first, then folders parents first, then the rest. */
  changes: Change[]
  unchanged: number
}

export interface DiffOptions {
  delete: boolean
  /** Decides equal-size files by content: returns true when the two sides' contents are equal. */
  sameContent?: (path: string) => Promise<boolean>
}

export async function diffTrees(source: TreeEntry[], dest: TreeEntry[], options: DiffOptions): Promise<SyncDiff> {
  const destByPath = new Map(dest.filter((entry) => entry.path !== '').map((entry) => [entry.path, entry]))
  const sourcePaths = new Set(source.map((entry) => entry.path))
  const deletes: Change[] = []
  const creates: Change[] = []
  let unchanged = 0
  const toCompare: { entry: TreeEntry; there: TreeEntry }[] = []

  for (const entry of source) {
    if (entry.path === '') continue
    const there = destByPath.get(entry.path)
    if (!there) {
      creates.push({ kind: 'new', entry })
      continue
    }
    if (there.type !== entry.type) {
      // A file where a folder must go, or the other way round: it has to go first, --delete or not.
      deletes.push(...subtree(dest, there).map((gone) => ({ kind: 'delete' as const, entry: gone })))
      creates.push({ kind: 'new', entry })
      continue
    }
    if (entry.type === 'dir') continue
    if (entry.type === 'symlink') {
      if (entry.target === there.target) unchanged++
      else creates.push({ kind: 'changed', entry })
      continue
    }
    if (entry.size !== there.size) creates.push({ kind: 'changed', entry })
    else if (options.sameContent) toCompare.push({ entry, there })
    else if (entry.mtime !== there.mtime) creates.push({ kind: 'changed', entry })
    else unchanged++
  }
  for (const { entry } of toCompare) {
    if (await options.sameContent!(entry.path)) unchanged++
    else creates.push({ kind: 'changed', entry })
  }
  if (options.delete) {
    const deleting = new Set(deletes.map((change) => change.entry.path))
    for (const entry of dest) {
      if (entry.path === '' || sourcePaths.has(entry.path) || deleting.has(entry.path)) continue
      deletes.push({ kind: 'delete', entry })
    }
  }
  deletes.sort((a, b) => depth(b.entry.path) - depth(a.entry.path) || (a.entry.path < b.entry.path ? -1 : 1))
  // Folders before what goes in them (the source walk already lists a folder before its contents).
  return { changes: [...deletes, ...creates], unchanged }
}

function subtree(entries: TreeEntry[], root: TreeEntry): TreeEntry[] {
  if (root.type !== 'dir') return [root]
  return entries.filter((entry) => entry.path === root.path || entry.path.startsWith(`${root.path}/`))
}

function depth(path: string): number {
  return path.split('/').length
}
