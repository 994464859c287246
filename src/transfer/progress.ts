/**
 * Progress of a transfer on stderr: one line redrawn in place (at most 10 times a second) on a terminal, nothing at
 * all on a pipe or a file, so that logs stay clean. No library: a bar is a few characters and a carriage return.
 *
 *   42% [########>..........]  107.5/256.0 MiB  98.3 MiB/s  ETA 0:02  3/120  studies/big.csv
 */
import type { Io } from '../terminal/io.js'

export interface Progress {
  /** What the whole run will move. */
  start(totals: { files: number; bytes: number }): void
  fileStarted(name: string): void
  fileDone(): void
  bytes(count: number): void
  /** Removes the line (before a summary or an error is printed). */
  stop(): void
}

export const silentProgress: Progress = {
  start() {},
  fileStarted() {},
  fileDone() {},
  bytes() {},
  stop() {},
}

/** A bar on a terminal (stderr), silence elsewhere or when `quiet`. */
export function createProgress(io: Io, options: { quiet: boolean; now?: () => number }): Progress {
  if (options.quiet || !io.stderr.isTTY) return silentProgress
  return new TerminalProgress(io, options.now ?? (() => performance.now()))
}

const redrawIntervalMs = 100
/** The rate is averaged over about this long, so that it neither jumps nor lags. */
const rateWindowMs = 2000

class TerminalProgress implements Progress {
  private totalFiles = 0
  private totalBytes = 0
  private doneFiles = 0
  private doneBytes = 0
  private current = ''
  private lastDraw = Number.NEGATIVE_INFINITY
  private drawn = false
  private timer: NodeJS.Timeout | undefined
  private rate = 0
  private sampleAt: number
  private sampleBytes = 0
  private readonly startedAt: number

  constructor(
    private readonly io: Io,
    private readonly now: () => number,
  ) {
    this.startedAt = now()
    this.sampleAt = this.startedAt
  }

  start(totals: { files: number; bytes: number }): void {
    this.totalFiles = totals.files
    this.totalBytes = totals.bytes
    // Redraw even when no bytes move (a slow pod, a stalled link), so that the time keeps going.
    this.timer = setInterval(() => this.draw(true), 1000)
    this.timer.unref()
    this.draw(true)
  }

  fileStarted(name: string): void {
    this.current = name
    this.draw(false)
  }

  fileDone(): void {
    this.doneFiles++
    this.draw(false)
  }

  bytes(count: number): void {
    this.doneBytes += count
    this.draw(false)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    if (this.drawn) this.io.stderr.write('\r\u001b[K')
    this.drawn = false
  }

  private draw(force: boolean): void {
    const now = this.now()
    if (!force && now - this.lastDraw < redrawIntervalMs) return
    this.lastDraw = now
    this.updateRate(now)
    const width = Math.max(40, (this.io.stderr as { columns?: number }).columns ?? 80)
    this.io.stderr.write(`\r${renderProgressLine(this.snapshot(now), width, this.io.color)}\u001b[K`)
    this.drawn = true
  }

  private updateRate(now: number): void {
    const elapsed = now - this.sampleAt
    if (elapsed < 250) return
    const instant = ((this.doneBytes - this.sampleBytes) * 1000) / elapsed
    const weight = Math.min(1, elapsed / rateWindowMs)
    this.rate = this.rate === 0 ? instant : this.rate + (instant - this.rate) * weight
    this.sampleAt = now
    this.sampleBytes = this.doneBytes
  }

  private snapshot(now: number): ProgressSnapshot {
    return {
      doneBytes: this.doneBytes,
      totalBytes: this.totalBytes,
      doneFiles: this.doneFiles,
      totalFiles: this.totalFiles,
      bytesPerSecond: this.rate,
      elapsedMs: now - this.startedAt,
      current: this.current,
    }
  }
}

export interface ProgressSnapshot {
  doneBytes: number
  totalBytes: number
  doneFiles: number
  totalFiles: number
  bytesPerSecond: number
  elapsedMs: number
  current: string
}

/** One line, at most `width` columns (the file name is shortened from the left to fit). */
export function renderProgressLine(state: ProgressSnapshot, width: number, color: boolean): string {
  const fraction =
    state.totalBytes > 0
      ? Math.min(1, state.doneBytes / state.totalBytes)
      : state.totalFiles > 0
        ? state.doneFiles / state.totalFiles
        : 1
  const percent = `${Math.floor(fraction * 100)}%`.padStart(4)
  const barWidth = width >= 100 ? 24 : width >= 70 ? 16 : 10
  const filled = Math.floor(fraction * barWidth)
  const bar = `[${'#'.repeat(filled)}${filled < barWidth ? '>' : ''}${'.'.repeat(Math.max(0, barWidth - filled - 1))}]`
  const unit = unitFor(state.totalBytes)
  const done = unit === 0 ? String(state.doneBytes) : (state.doneBytes / 1024 ** unit).toFixed(1)
  const amount = `${done}/${formatBytes(state.totalBytes)}`
  const rate = state.bytesPerSecond > 0 ? `${formatBytes(state.bytesPerSecond)}/s` : '--'
  const remaining = state.bytesPerSecond > 0 ? (state.totalBytes - state.doneBytes) / state.bytesPerSecond : undefined
  const eta = remaining === undefined ? 'ETA --:--' : `ETA ${formatDuration(remaining * 1000)}`
  const files = state.totalFiles > 1 ? `${state.doneFiles}/${state.totalFiles}` : ''
  const fixed = [percent, color ? `\u001b[36m${bar}\u001b[0m` : bar, amount, rate, eta, files]
    .filter(Boolean)
    .join('  ')
  const fixedLength = [percent, bar, amount, rate, eta, files].filter(Boolean).join('  ').length
  const room = width - 1 - fixedLength - 2
  if (room < 8 || !state.current) return fixed
  return `${fixed}  ${shortenLeft(state.current, room)}`
}

function shortenLeft(text: string, room: number): string {
  return text.length <= room ? text : `…${text.slice(text.length - room + 1)}`
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const

function unitFor(bytes: number): number {
  let unit = 0
  while (bytes >= 1024 && unit < units.length - 1) {
    bytes /= 1024
    unit++
  }
  return unit
}

/** 1.2 MiB, 512 B, 3.0 GiB: binary units, one decimal above bytes. */
export function formatBytes(bytes: number): string {
  const unit = unitFor(bytes)
  if (unit === 0) return `${Math.round(bytes)} B`
  return `${(bytes / 1024 ** unit).toFixed(1)} ${units[unit]}`
}

/** 0:07, 12:34, 1:02:03. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.round(ms / 1000))
  const hours = Math.floor(total / 3600)
  const minutes = Math.floor((total % 3600) / 60)
  const seconds = String(total % 60).padStart(2, '0')
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`
}

/** "in 2.3 s, 111.2 MiB/s" for a summary line. */
export function formatRate(bytes: number, ms: number): string {
  const seconds = ms / 1000
  const time = seconds < 10 ? `${seconds.toFixed(1)} s` : formatDuration(ms)
  return bytes > 0 && seconds > 0 ? `in ${time}, ${formatBytes(bytes / seconds)}/s` : `in ${time}`
}
