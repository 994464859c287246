/**
 * Watches a local folder tree for sync --watch: one fs.watch per folder (recursive fs.watch on Linux is new in
 * Node 20 and has been unreliable with folders created later), reconciled with the folders the last scan found.
 * Events are debounced: an editor's save is several events, a `git checkout` hundreds; one sync follows them all.
 */
import { type FSWatcher, watch } from 'node:fs'
import { join } from 'node:path'

export interface TreeWatcher {
  /** Watches exactly these folders (relative to the root, '' is the root) from now on. */
  update(folders: readonly string[]): void
  close(): void
}

export interface WatchOptions {
  /** Quiet time after the last event before `onChange` runs. */
  debounceMs: number
  /** Run at the latest this long after the first event, even if events keep coming. */
  maxDelayMs: number
}

export function watchTree(root: string, onChange: () => void, options: WatchOptions): TreeWatcher {
  const watchers = new Map<string, FSWatcher>()
  let quiet: NodeJS.Timeout | undefined
  let deadline: NodeJS.Timeout | undefined
  let closed = false
  const fire = () => {
    clearTimeout(quiet)
    clearTimeout(deadline)
    quiet = undefined
    deadline = undefined
    if (!closed) onChange()
  }
  const changed = () => {
    clearTimeout(quiet)
    quiet = setTimeout(fire, options.debounceMs)
    deadline ??= setTimeout(fire, options.maxDelayMs)
  }
  return {
    update(folders) {
      if (closed) return
      const wanted = new Set(folders)
      for (const [folder, watcher] of watchers) {
        if (wanted.has(folder)) continue
        watcher.close()
        watchers.delete(folder)
      }
      for (const folder of wanted) {
        if (watchers.has(folder)) continue
        try {
          const watcher = watch(folder === '' ? root : join(root, ...folder.split('/')), { persistent: true }, changed)
          // A folder removed under its watcher: the next scan drops it.
          watcher.on('error', () => {
            watcher.close()
            watchers.delete(folder)
            changed()
          })
          watchers.set(folder, watcher)
        } catch {
          // Gone since the scan: the event that removed it triggers the next sync.
        }
      }
    },
    close() {
      closed = true
      clearTimeout(quiet)
      clearTimeout(deadline)
      for (const watcher of watchers.values()) watcher.close()
      watchers.clear()
    },
  }
}
