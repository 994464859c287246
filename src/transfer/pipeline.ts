/**
 * Moving one file's bytes over SFTP with many requests in flight, hashing them in order on our side.
 *
 * Why not ssh2's fastPut/fastGet: they keep 64 requests of 32 KiB in flight but write out of order, so the bytes
 * cannot be hashed as they pass, and they take paths, not the temporary handles we rename at the end. Why not its
 * read/write streams: one request in flight, a round trip per 32 KiB. Here the local side is read (or written)
 * strictly in order while requests of the server's largest size (~255 KiB with OpenSSH) are outstanding, as many
 * as the shared `Slots` allow: 2-3x fastPut/fastGet at loopback (bench/transfer.ts has the numbers).
 */
import { createHash } from 'node:crypto'
import type { FileHandle } from 'node:fs/promises'
import type { RemoteFile } from '../ssh/sftp.js'

/**
 * Requests in flight, shared by every file of a run: several small files move at once while one large file may
 * use them all, and memory stays bounded (slots × chunk size).
 */
export class Slots {
  private free: number
  private readonly waiters: (() => void)[] = []
  constructor(count: number) {
    this.free = count
  }
  tryAcquire(): boolean {
    if (this.free === 0) return false
    this.free--
    return true
  }
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve()
    return new Promise((resolve) => this.waiters.push(resolve))
  }
  release(): void {
    const next = this.waiters.shift()
    if (next) next()
    else this.free++
  }
}

export interface PipelineOptions {
  /** Bytes per SFTP request. */
  chunkSize: number
  /** Requests outstanding at once, shared with other transfers. */
  slots: Slots
  signal?: AbortSignal
  /** Called as bytes are acknowledged (upload) or written locally (download). */
  onBytes?: (bytes: number) => void
}

export interface PipelineResult {
  bytes: number
  /** SHA-256 (hex) of exactly the bytes that were moved. */
  sha256: string
}

/** The file changed size under us while it was being copied. */
export class ChangedWhileCopying extends Error {
  override readonly name = 'ChangedWhileCopying'
}

/** Sends `size` bytes of `source` (from offset 0) to `target`. */
export async function sendFileContent(
  source: FileHandle,
  target: RemoteFile,
  size: number,
  options: PipelineOptions,
): Promise<PipelineResult> {
  const hash = createHash('sha256')
  const inFlight = new Set<Promise<void>>()
  let failure: unknown
  let position = 0
  while (position < size && failure === undefined) {
    await options.slots.acquire()
    if (options.signal?.aborted || failure !== undefined) {
      options.slots.release()
      break
    }
    const length = Math.min(options.chunkSize, size - position)
    const buffer = Buffer.allocUnsafe(length)
    let bytesRead: number
    try {
      ;({ bytesRead } = await source.read(buffer, 0, length, position))
    } catch (error) {
      options.slots.release()
      failure ??= error
      break
    }
    if (bytesRead === 0) {
      options.slots.release()
      break
    }
    const chunk = bytesRead === length ? buffer : buffer.subarray(0, bytesRead)
    hash.update(chunk)
    const write: Promise<void> = target.write(chunk, position).then(
      () => {
        inFlight.delete(write)
        options.slots.release()
        options.onBytes?.(chunk.length)
      },
      (error: unknown) => {
        inFlight.delete(write)
        options.slots.release()
        failure ??= error
      },
    )
    inFlight.add(write)
    position += bytesRead
  }
  // Never leave requests behind: the caller closes the handle next.
  await Promise.all(inFlight)
  if (failure !== undefined) throw failure
  options.signal?.throwIfAborted()
  if (position < size) throw new ChangedWhileCopying(`it shrank from ${size} to ${position} bytes`)
  return { bytes: position, sha256: hash.digest('hex') }
}

interface PendingRead {
  position: number
  length: number
  data: Promise<Buffer>
}

/** Receives `size` bytes of `source` into `target` (from offset 0). */
export async function receiveFileContent(
  source: RemoteFile,
  target: FileHandle,
  size: number,
  options: PipelineOptions,
): Promise<PipelineResult> {
  const hash = createHash('sha256')
  const queue: PendingRead[] = []
  /** Call with a slot held: it is released when the read settles. */
  const request = (position: number, length: number): PendingRead => {
    const data = source.read(length, position)
    // Awaited in order below; until then a failure must not count as unhandled.
    data.then(
      () => options.slots.release(),
      () => options.slots.release(),
    )
    return { position, length, data }
  }
  let requested = 0
  let written = 0
  try {
    while (written < size) {
      options.signal?.throwIfAborted()
      // Take every free slot; with nothing queued, wait for one.
      while (requested < size) {
        if (queue.length === 0) await options.slots.acquire()
        else if (!options.slots.tryAcquire()) break
        const length = Math.min(options.chunkSize, size - requested)
        queue.push(request(requested, length))
        requested += length
      }
      const head = queue.shift()!
      const data = await head.data
      if (data.length === 0) throw new ChangedWhileCopying(`it shrank to ${head.position} bytes`)
      // A short read (allowed by SFTP anywhere): ask for the rest before anything queued behind it.
      if (data.length < head.length) {
        await options.slots.acquire()
        queue.unshift(request(head.position + data.length, head.length - data.length))
      }
      hash.update(data)
      await writeFully(target, data, head.position)
      written += data.length
      options.onBytes?.(data.length)
    }
  } finally {
    // Outstanding reads answer into buffers we no longer need; wait so that the handle can be closed cleanly.
    await Promise.allSettled(queue.map((pending) => pending.data))
  }
  return { bytes: written, sha256: hash.digest('hex') }
}

/** FileHandle.write may write less than asked (a disk filling up): go on until all is written or it fails. */
async function writeFully(target: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < data.length) {
    const { bytesWritten } = await target.write(data, done, data.length - done, position + done)
    if (bytesWritten === 0) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
    done += bytesWritten
  }
}
