/**
 * `akm-access cp SRC… DEST`: files and folders to or from the management pod over SFTP, through the same tunnel
 * and host key checks as `ssh`. Every file lands under a temporary name and is renamed once verified, so a failed
 * or interrupted copy never leaves a half-written file under the real name.
 */
import type { Deps } from '../deps.js'
import { AccessError, ExitCode, UserCancelled } from '../errors.js'
import { say } from '../terminal/io.js'
import { abortOnSignals, isCancellation, type SignalSource } from '../transfer/abort.js'
import { planCopy } from '../transfer/cp-plan.js'
import { type Direction, executePlan, type TransferResult } from '../transfer/engine.js'
import { createProgress, formatBytes, formatRate } from '../transfer/progress.js'
import { type PathSpec, parsePathSpec } from '../transfer/remote-path.js'
import { openTransferSession } from '../transfer/session.js'
import { localSide, remoteSide } from '../transfer/sides.js'
import type { SshAccessOptions } from './ssh-access.js'

export interface CpOptions extends SshAccessOptions {
  /** As typed: `:path` is in the pod. */
  sources: string[]
  dest: string
  /** No progress bar and no summary. */
  quiet: boolean
}

export interface CpResult {
  direction: Direction
  files: number
  bytes: number
  /** Files verified by SHA-256 on both sides; the others were verified by size (the pod could not hash them). */
  checksummed: number
  folders: number
  symlinks: number
  seconds: number
}

type CpDeps = Pick<Deps, 'io' | 'kube' | 'backend' | 'prompter' | 'logger'>

export async function runCp(options: CpOptions, deps: CpDeps, signals?: SignalSource): Promise<CpResult> {
  const { io } = deps
  const { direction, sources, dest } = checkSides(options.sources, options.dest)
  const started = performance.now()
  const transfer = await openTransferSession(options, deps)
  const progress = createProgress(io, { quiet: options.quiet })
  let result: TransferResult | undefined
  let planned = 0
  try {
    result = await abortOnSignals(async (signal) => {
      const local = localSide()
      const remote = remoteSide(transfer.session.sftp, transfer.session.podName)
      const { plan, skipped } =
        direction === 'upload'
          ? await planCopy(direction, sources, dest, local, remote)
          : await planCopy(direction, sources, dest, remote, local)
      for (const path of skipped) say(io, `skipping ${path}: not a file, folder or link`)
      planned = plan.files.length
      return executePlan(plan, transfer.session, progress, signal)
    }, signals)
  } catch (error) {
    progress.stop()
    if (isCancellation(error)) {
      say(io, 'interrupted: no partial file was left behind')
      // The signal's own code (130, 143, 129), carried by the Interrupted that abortOnSignals throws.
      throw error instanceof UserCancelled ? error : new UserCancelled()
    }
    if (planned > 1 && error instanceof AccessError) {
      error.message += ` (the files copied before it are complete)`
    }
    throw error
  } finally {
    progress.stop()
    transfer.close()
  }
  const seconds = (performance.now() - started) / 1000
  if (!options.quiet && io.stderr.isTTY) {
    const verified =
      result.files === 0
        ? ''
        : result.checksummed === result.files
          ? ', verified by SHA-256'
          : result.checksummed === 0
            ? ', verified by size'
            : `, ${result.checksummed} verified by SHA-256, the rest by size`
    say(
      io,
      `${direction === 'upload' ? 'sent' : 'received'} ${plural(result.files, 'file')} (${formatBytes(result.bytes)}) ` +
        `${formatRate(result.bytes, seconds * 1000)}${verified}`,
    )
  }
  return {
    direction,
    files: result.files,
    bytes: result.bytes,
    checksummed: result.checksummed,
    folders: result.folders,
    symlinks: result.symlinks,
    seconds: Math.round(seconds * 1000) / 1000,
  }
}

/** One side must be the pod, the other local: `SRC… :DEST` uploads, `:SRC… DEST` downloads. */
export function checkSides(
  rawSources: string[],
  rawDest: string,
): { direction: Direction; sources: string[]; dest: { path: string; trailingSlash: boolean } } {
  if (rawSources.length === 0) {
    throw new AccessError('cp needs a source and a destination', {
      exitCode: ExitCode.usage,
      hint: 'akm-access cp ./study.yaml :/work/  or  akm-access cp :/work/results ./',
    })
  }
  const sources = rawSources.map(parsePathSpec)
  const dest: PathSpec = parsePathSpec(rawDest)
  const remoteSources = sources.filter((spec) => spec.side === 'remote').length
  if (remoteSources !== 0 && remoteSources !== sources.length) {
    throw new AccessError('the sources must all be local or all in the pod', {
      exitCode: ExitCode.usage,
      hint: 'run cp once per direction',
    })
  }
  const sourceSide = sources[0]!.side
  if (sourceSide === dest.side) {
    throw new AccessError(sourceSide === 'local' ? 'neither side is in the pod' : 'both sides are in the pod', {
      exitCode: ExitCode.usage,
      hint:
        sourceSide === 'local'
          ? 'write pod paths with a leading colon: :/work/study.yaml (or :study.yaml, relative to /work)'
          : 'to copy within the pod: akm-access shell -- cp -a SRC DEST',
    })
  }
  return {
    direction: dest.side === 'remote' ? 'upload' : 'download',
    sources: sources.map((spec) => spec.path),
    dest: { path: dest.path, trailingSlash: dest.trailingSlash },
  }
}

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`
}
