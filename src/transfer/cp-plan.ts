/**
 * cp's rules, as cp -r and scp -r have them: into an existing folder, each source keeps its name; otherwise the one
 * source becomes DEST. A DEST ending in `/`, or named with several sources, is a folder and is created if missing.
 * Folders are copied whole (with their links as links); files already at the destination are replaced.
 */
import { AccessError, ExitCode } from '../errors.js'
import { type Direction, emptyPlan, type Plan } from './engine.js'
import type { Side } from './sides.js'

export interface CopyPlan {
  plan: Plan
  /** Sockets, devices and fifos found in the sources: not copied. */
  skipped: string[]
}

export async function planCopy(
  direction: Direction,
  sources: string[],
  dest: { path: string; trailingSlash: boolean },
  from: Side,
  to: Side,
): Promise<CopyPlan> {
  const plan = emptyPlan(direction)
  const skipped: string[] = []
  const destEntry = await to.stat(dest.path)
  let intoFolder = destEntry?.type === 'dir'
  if (destEntry && destEntry.type !== 'dir' && (dest.trailingSlash || sources.length > 1)) {
    throw new AccessError(`${to.show(dest.path)} is not a folder`, {
      exitCode: ExitCode.usage,
      hint: sources.length > 1 ? 'several sources need a folder to go into' : 'drop the trailing / to copy onto it',
    })
  }
  if (!destEntry && (dest.trailingSlash || sources.length > 1)) {
    plan.mkdirs.push({ dest: dest.path, mode: 0o755 })
    intoFolder = true
  }

  const targets = new Map<string, string>()
  for (const source of sources) {
    const entry = await from.stat(source)
    if (!entry) {
      throw new AccessError(`${from.show(source)}: no such file or directory`, {
        exitCode: from.kind === 'local' ? ExitCode.local : ExitCode.remoteFile,
      })
    }
    const name = from.nameOf(source)
    if (!name || name === '/') {
      throw new AccessError(`cannot copy ${from.show(source)} as a whole: name a folder inside it`, {
        exitCode: ExitCode.usage,
      })
    }
    const target = intoFolder ? to.join(dest.path, name) : dest.path
    const earlier = targets.get(target)
    if (earlier !== undefined) {
      throw new AccessError(
        `${from.show(earlier)} and ${from.show(source)} would both be copied to ${to.show(target)}`,
        {
          exitCode: ExitCode.usage,
        },
      )
    }
    targets.set(target, source)
    const targetEntry = intoFolder ? await to.stat(target) : destEntry
    const targetError = (what: string) =>
      new AccessError(`cannot overwrite ${what} ${to.show(target)} with ${from.show(source)}`, {
        exitCode: to.kind === 'local' ? ExitCode.local : ExitCode.remoteFile,
        hint: 'remove it first, or copy somewhere else',
      })

    if (entry.type === 'file') {
      if (targetEntry?.type === 'dir') throw targetError('the folder')
      plan.files.push({ source, dest: target, label: name, ...entry })
      continue
    }
    if (targetEntry && targetEntry.type !== 'dir') throw targetError('the file')
    const tree = await from.scan(source)
    skipped.push(...tree.skipped.map((path) => from.show(from.join(source, path))))
    const folders: Plan['dirAttributes'] = []
    for (const item of tree.entries) {
      const itemSource = from.join(source, item.path)
      const itemDest = to.join(target, item.path)
      const label = item.path === '' ? name : `${name}/${item.path}`
      if (item.type === 'dir') {
        plan.mkdirs.push({ dest: itemDest, mode: item.mode })
        folders.push({ dest: itemDest, mode: item.mode, mtime: item.mtime, atime: item.atime })
      } else if (item.type === 'file') {
        plan.files.push({ source: itemSource, dest: itemDest, label, ...item })
      } else if (item.target !== undefined) {
        plan.symlinks.push({ dest: itemDest, target: item.target })
      }
    }
    // Deepest first: setting a folder's time must come after everything inside it has been written.
    plan.dirAttributes.push(...folders.reverse())
  }
  return { plan, skipped }
}
