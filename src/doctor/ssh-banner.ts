/**
 * Reads the identification line an SSH server sends first (`SSH-2.0-OpenSSH_9.2p1 Debian-2`, RFC 4253 §4.2) from a
 * stream, then puts every byte back, so that the same connection can go on to a key exchange. Proof that sshd itself
 * answers, not only that something accepted the connection.
 */
import type { Readable } from 'node:stream'
import { AccessError, ExitCode } from '../errors.js'

/** RFC 4253 lets a server send other lines first; a real one sends a few at most. */
const MAX_PREAMBLE_BYTES = 8192

export interface SshBanner {
  /** The identification line, without CR LF, e.g. `SSH-2.0-OpenSSH_9.2p1 Debian-2`. */
  line: string
  /** `2.0` (or `1.99`, which also speaks 2.0). */
  protocol: string
  /** `OpenSSH_9.2p1`. */
  software: string
}

export interface ReadBannerOptions {
  timeoutMs: number
  /** For messages: `management-pod-…:22`. */
  where: string
}

/**
 * Resolves with the banner once its line is complete; the stream is left paused with everything read unshifted.
 * Rejects with an AccessError (exit 16) on a timeout, a close before the banner, or something that is not SSH; a
 * stream error (e.g. the kubelet's "connection refused") is passed through as it is.
 */
export function readSshBanner(stream: Readable, options: ReadBannerOptions): Promise<SshBanner> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    const unreachable = (message: string) =>
      new AccessError(message, {
        exitCode: ExitCode.sshUnreachable,
        hint: 'is sshd running in the pod and listening on this port?',
      })
    const timer = setTimeout(
      () => finish(unreachable(`no SSH banner from ${options.where} within ${options.timeoutMs / 1000}s`)),
      options.timeoutMs,
    )

    function finish(error: Error | undefined, banner?: SshBanner): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('error', onError)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
      if (error) {
        reject(error)
        return
      }
      // Paused explicitly, so that a later 'data' listener does not start the flow before it is ready for it.
      stream.pause()
      if (size > 0) stream.unshift(Buffer.concat(chunks))
      resolve(banner!)
    }
    function onData(chunk: Buffer): void {
      chunks.push(chunk)
      size += chunk.length
      const text = Buffer.concat(chunks).toString('latin1')
      let start = 0
      for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
        const line = text.slice(start, end).replace(/\r$/, '')
        start = end + 1
        if (!line.startsWith('SSH-')) continue
        const match = /^SSH-([0-9.]+)-(\S+)/.exec(line)
        if (!match || (match[1] !== '2.0' && match[1] !== '1.99')) {
          finish(unreachable(`${options.where} speaks an SSH version akm-access does not: "${printable(line)}"`))
        } else {
          finish(undefined, { line: printable(line), protocol: match[1], software: match[2]! })
        }
        return
      }
      if (size > MAX_PREAMBLE_BYTES) {
        finish(unreachable(`${options.where} answers, but not as an SSH server: "${printable(text.slice(0, 60))}…"`))
      }
    }
    function onError(error: Error): void {
      finish(error)
    }
    function onEnd(): void {
      const text = Buffer.concat(chunks).toString('latin1')
      finish(
        unreachable(
          text
            ? `${options.where} closed the connection without an SSH banner (it sent "${printable(text.slice(0, 60))}")`
            : `${options.where} closed the connection without sending an SSH banner`,
        ),
      )
    }
    stream.on('data', onData)
    stream.on('error', onError)
    stream.on('end', onEnd)
    stream.on('close', onEnd)
    stream.resume()
  })
}

/** Control characters from the network never reach the terminal. */
function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?')
}
