/**
 * `akm-access sync LOCAL_DIR [:REMOTE_DIR]`: one-way sync of a folder of resource files to the pod (or, with
 * --pull, from it). Only new and changed files travel, each through cp's temporary-name-and-verify path; --delete
 * removes what the source no longer has; --watch keeps syncing as local files change, and survives a pod restart.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { basename, resolve } from 'node:path'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode, UserCancelled } from '../errors.js'
import { say } from '../terminal/io.js'
import { abortOnSignals, isCancellation, type SignalSource } from '../transfer/abort.js'
import { type Direction, emptyPlan, executePlan, type Plan } from '../transfer/engine.js'
import { TEMP_NAME_PATTERN } from '../transfer/file-copy.js'
import { excludeFilter } from '../transfer/glob.js'
import { createProgress, formatBytes } from '../transfer/progress.js'
import { parsePathSpec, REMOTE_HOME, showRemote } from '../transfer/remote-path.js'
import { type OpenTransfer, openTransferSession } from '../transfer/session.js'
import { localSide, remoteSide, type Side } from '../transfer/sides.js'
import { diffTrees } from '../transfer/sync-plan.js'
import type { EntryType, PathFilter } from '../transfer/tree.js'
import { watchTree } from '../transfer/watch.js'
import { plural } from './cp.js'
import type { SshAccessOptions } from './ssh-access.js'

export interface SyncOptions extends SshAccessOptions {
  localDir: string
  /** As typed (`:/work/x` or `:x`); default /work/<name of the local folder>. */
  remoteDir: string | undefined
  /** Pod → local instead of local → pod. */
  pull: boolean
  delete: boolean
  dryRun: boolean
  checksum: boolean
  watch: boolean
  exclude: string[]
  quiet: boolean
  /**
   * Results as JSON on stdout instead of lines for people: with --watch one line per pass (written here), else
   * the one result, which the command prints.
   */
  json: boolean
}

export interface SyncResult {
  direction: Direction
  source: string
  dest: string
  dryRun: boolean
  /** Files sent (or received): new and changed ones. */
  files: number
  bytes: number
  deleted: number
  unchanged: number
  changes: { kind: 'new' | 'changed' | 'delete'; path: string; type: EntryType }[]
  seconds: number
}

type SyncDeps = Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter' | 'logger'>

export async function runSync(options: SyncOptions, deps: SyncDeps, signals?: SignalSource): Promise<SyncResult> {
  const { io } = deps
  const localDir = options.localDir
  const remoteDir = remoteTarget(options.remoteDir, localDir)
  if (options.watch && options.pull) {
    throw new AccessError('--watch follows local changes: it cannot be used with --pull', { exitCode: ExitCode.usage })
  }
  if (options.watch && options.dryRun) {
    throw new AccessError('--watch and --dry-run together would never change anything', { exitCode: ExitCode.usage })
  }
  let transfer = await openTransferSession(options, deps)
  let lost = false
  const track = (opened: OpenTransfer) => void opened.closed.then(() => (lost = true))
  track(transfer)
  let lastFolders: string[] = []

  const pass = async (signal: AbortSignal): Promise<SyncResult> => {
    const result = await syncOnce(options, localDir, remoteDir, transfer, deps, signal, (folders) => {
      lastFolders = folders
    })
    report(options, deps, result)
    return result
  }

  try {
    const first = await abortOnSignals(pass, signals).catch((error: unknown) => {
      if (isCancellation(error)) throw error instanceof UserCancelled ? error : new UserCancelled()
      throw error
    })
    if (!options.watch) return first

    if (!options.quiet) say(io, `watching ${localDir} for changes (Ctrl-C to stop)`)
    let last = first
    await abortOnSignals(
      (signal) =>
        new Promise<void>((resolveWatch, rejectWatch) => {
          let running = false
          let again = false
          const watcher = watchTree(localDir, () => void run(), { debounceMs: 300, maxDelayMs: 2000 })
          watcher.update(lastFolders)
          const run = async (): Promise<void> => {
            if (signal.aborted) return
            if (running) {
              again = true
              return
            }
            running = true
            try {
              if (lost) {
                transfer = await reconnect(options, deps, transfer, signal)
                lost = false
                track(transfer)
              }
              last = await pass(signal)
              watcher.update(lastFolders)
            } catch (error) {
              if (isCancellation(error) || signal.aborted) {
                watcher.close()
                rejectWatch(signal.reason instanceof UserCancelled ? signal.reason : new UserCancelled())
                return
              }
              // Keep watching: a file that vanished mid-scan, a pod restarting; the next change tries again.
              say(io, `Error: ${(error as Error).message}`)
              if (error instanceof AccessError && error.exitCode === ExitCode.connectionLost) lost = true
            } finally {
              running = false
            }
            if (again) {
              again = false
              void run()
            }
          }
          signal.addEventListener(
            'abort',
            () => {
              if (running) return // the pass in flight ends with the cancellation, and rejects
              watcher.close()
              resolveWatch()
            },
            { once: true },
          )
        }),
      signals,
    )
    return last
  } finally {
    transfer.close()
  }
}

async function syncOnce(
  options: SyncOptions,
  localDir: string,
  remoteDir: string,
  transfer: OpenTransfer,
  deps: SyncDeps,
  signal: AbortSignal,
  onFolders: (folders: string[]) => void,
): Promise<SyncResult> {
  const started = performance.now()
  const { session } = transfer
  const direction: Direction = options.pull ? 'download' : 'upload'
  const local = localSide()
  const remote = remoteSide(session.sftp, session.podName)
  const [source, dest, sourceDir, destDir]: [Side, Side, string, string] = options.pull
    ? [remote, local, remoteDir, localDir]
    : [local, remote, localDir, remoteDir]
  const exclude = excludeFilter(options.exclude)
  // Our own temporary files (an interrupted run's) are never sent; in the destination they count as extraneous.
  const sourceFilter: PathFilter = (path, type) =>
    TEMP_NAME_PATTERN.test(path.slice(path.lastIndexOf('/') + 1)) || Boolean(exclude?.(path, type))

  const sourceRoot = await source.stat(sourceDir)
  if (sourceRoot?.type !== 'dir') {
    throw new AccessError(`${source.show(sourceDir)} is ${sourceRoot ? 'not a folder' : 'missing'}`, {
      exitCode: source.kind === 'local' ? ExitCode.local : ExitCode.remoteFile,
      hint: 'sync takes a folder; copy single files with akm-access cp',
    })
  }
  const destRoot = await dest.stat(destDir)
  if (destRoot && destRoot.type !== 'dir') {
    throw new AccessError(`${dest.show(destDir)} is not a folder`, {
      exitCode: dest.kind === 'local' ? ExitCode.local : ExitCode.remoteFile,
    })
  }
  const [sourceTree, destTree] = await Promise.all([
    source.scan(sourceDir, sourceFilter),
    destRoot ? dest.scan(destDir, exclude) : Promise.resolve({ entries: [], skipped: [] }),
  ])
  for (const path of sourceTree.skipped) say(deps.io, `skipping ${path}: not a file, folder or link`)
  if (!options.pull) onFolders(sourceTree.entries.filter((entry) => entry.type === 'dir').map((entry) => entry.path))

  const sameContent = options.checksum
    ? async (path: string) => {
        const [localHash, remoteHash] = await Promise.all([
          hashLocal(local.join(localDir, path)),
          session.hasher.hash(remote.join(remoteDir, path)),
        ])
        if (remoteHash === undefined) {
          throw new AccessError('--checksum needs sha256sum and xargs in the management container', {
            exitCode: ExitCode.remoteFailed,
            hint: 'sync without --checksum (size and modification time decide)',
          })
        }
        return localHash === remoteHash
      }
    : undefined
  const diff = await diffTrees(sourceTree.entries, destTree.entries, {
    delete: options.delete,
    ...(sameContent ? { sameContent } : {}),
  })

  const plan: Plan = emptyPlan(direction)
  if (!destRoot) plan.mkdirs.push({ dest: destDir, mode: sourceRoot.mode })
  for (const change of diff.changes) {
    const { entry } = change
    const to = dest.join(destDir, entry.path)
    if (change.kind === 'delete') plan.deletes.push({ dest: to, type: entry.type, label: entry.path })
    else if (entry.type === 'dir') plan.mkdirs.push({ dest: to, mode: entry.mode })
    else if (entry.type === 'symlink') plan.symlinks.push({ dest: to, target: entry.target ?? '' })
    else plan.files.push({ source: source.join(sourceDir, entry.path), dest: to, label: entry.path, ...entry })
  }
  const changes = diff.changes.map((change) => ({
    kind: change.kind,
    path: change.entry.path,
    type: change.entry.type,
  }))
  const planned = plan.files.reduce((sum, file) => sum + file.size, 0)
  if (options.dryRun) {
    for (const change of options.json ? [] : changes) {
      deps.io.stdout.write(`${change.kind.padEnd(8)} ${change.path}${change.type === 'dir' ? '/' : ''}\n`)
    }
    return {
      direction,
      source: source.show(sourceDir),
      dest: dest.show(destDir),
      dryRun: true,
      files: plan.files.length,
      bytes: planned,
      deleted: plan.deletes.length,
      unchanged: diff.unchanged,
      changes,
      seconds: (performance.now() - started) / 1000,
    }
  }
  const progress = createProgress(deps.io, { quiet: options.quiet || options.json })
  try {
    const done = await executePlan(plan, session, progress, signal)
    return {
      direction,
      source: source.show(sourceDir),
      dest: dest.show(destDir),
      dryRun: false,
      files: done.files,
      bytes: done.bytes,
      deleted: done.deleted,
      unchanged: diff.unchanged,
      changes,
      seconds: Math.round(performance.now() - started) / 1000,
    }
  } finally {
    progress.stop()
  }
}

/** `sent 3 files (1.2 MiB), deleted 1, 42 unchanged`, on stderr; or the result as one JSON line on stdout. */
function report(options: SyncOptions, deps: SyncDeps, result: SyncResult): void {
  if (options.json) {
    if (options.watch) deps.io.stdout.write(`${JSON.stringify(result)}\n`)
    return
  }
  if (options.quiet) return
  const verb = result.direction === 'upload' ? 'sent' : 'received'
  const parts = [
    `${result.dryRun ? `would have ${verb}` : verb} ${plural(result.files, 'file')} (${formatBytes(result.bytes)})`,
    `${result.dryRun ? 'would have deleted' : 'deleted'} ${result.deleted}`,
    `${result.unchanged} unchanged`,
  ]
  say(deps.io, `${parts.join(', ')}${result.dryRun ? ' (dry run)' : ''}`)
}

/** The pod folder: as given (`:x` is /work/x), else /work/<name of the local folder>. */
export function remoteTarget(given: string | undefined, localDir: string): string {
  if (given === undefined) return `${REMOTE_HOME}/${basename(resolve(localDir))}`
  const spec = parsePathSpec(given)
  if (spec.side !== 'remote') {
    throw new AccessError(`${given} is not a pod path`, {
      exitCode: ExitCode.usage,
      hint: `write it with a leading colon: :${given.startsWith('/') ? given : `/work/${given}`}`,
    })
  }
  if (spec.path === '/' || spec.path === REMOTE_HOME) {
    throw new AccessError(`refusing to sync into ${showRemote(spec.path)} itself`, {
      exitCode: ExitCode.usage,
      hint: `name a folder in it, e.g. :/work/${basename(resolve(localDir))}`,
    })
  }
  return spec.path
}

async function reconnect(
  options: SyncOptions,
  deps: SyncDeps,
  previous: OpenTransfer,
  signal: AbortSignal,
): Promise<OpenTransfer> {
  previous.close()
  for (let delayMs = 1000; ; delayMs = Math.min(delayMs * 2, 30_000)) {
    signal.throwIfAborted()
    try {
      const opened = await openTransferSession(options, deps)
      say(deps.io, `reconnected to ${opened.session.podName}`)
      return opened
    } catch (error) {
      say(deps.io, `cannot reach the pod (${(error as Error).message}); retrying in ${delayMs / 1000} s`)
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, delayMs)
        signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolveWait()
        })
      })
    }
  }
}

function hashLocal(path: string): Promise<string> {
  return new Promise((resolveHash, reject) => {
    const hash = createHash('sha256')
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolveHash(hash.digest('hex')))
  })
}
