/**
 * SHA-256 of files in the pod, to verify copies end to end. SFTP has no checksum operation that OpenSSH serves, so
 * one long-running remote command does it for the whole run: we write NUL-terminated paths to its stdin, it answers
 * one line per path, in order — the hash, or `-` when that file cannot be read. One channel, no process start and
 * no round trip of its own per file, and paths travel as data (xargs -0 hands each to sha256sum as one argument),
 * never through a shell's parser.
 */
import type { Readable, Writable } from 'node:stream'
import type { Logger } from '../log.js'

/** Fails fast (127) where the tools are missing, so that we fall back to comparing sizes. */
export const HASHER_SCRIPT =
  'command -v sha256sum >/dev/null 2>&1 && command -v xargs >/dev/null 2>&1 || exit 127; ' +
  `exec xargs -0 -n 1 sh -c 'exec 2>/dev/null; h=$(sha256sum < "$1") && echo "\${h%% *}" || echo -' akm-sha256`

export interface RemoteHasher {
  /** The file's SHA-256 (hex), or undefined when it cannot be computed (no tools in the pod, unreadable file). */
  hash(path: string): Promise<string | undefined>
  /** False once the pod has shown it cannot compute hashes. */
  readonly available: boolean
  close(): void
}

export interface HasherChannel {
  stdin: Writable
  stdout: Readable
  close(): void
}

export function createRemoteHasher(channel: HasherChannel, logger: Logger): RemoteHasher {
  const waiting: ((line: string | undefined) => void)[] = []
  let available = true
  let buffered = ''
  const disable = (why: string) => {
    if (!available) return
    available = false
    logger.debug(`checksums in the pod are unavailable (${why}); copies are verified by size`)
    for (const resolve of waiting.splice(0)) resolve(undefined)
  }
  channel.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('latin1')
    let newline = buffered.indexOf('\n')
    while (newline >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      if (!/^([0-9a-f]{64}|-)$/.test(line)) return disable(`unexpected answer ${JSON.stringify(line.slice(0, 80))}`)
      waiting.shift()?.(line)
      newline = buffered.indexOf('\n')
    }
  })
  channel.stdout.once('end', () => disable('the hashing command ended'))
  channel.stdout.once('close', () => disable('the hashing command ended'))
  channel.stdin.on('error', () => disable('its input closed'))
  return {
    get available() {
      return available
    },
    hash(path) {
      if (!available || path.includes('\0')) return Promise.resolve(undefined)
      return new Promise((resolve) => {
        waiting.push((line) => resolve(line === undefined || line === '-' ? undefined : line))
        channel.stdin.write(Buffer.from(`${path}\0`, 'utf8'))
      })
    },
    close() {
      available = false
      for (const resolve of waiting.splice(0)) resolve(undefined)
      channel.stdin.end()
      channel.close()
    },
  }
}
