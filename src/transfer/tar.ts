/**
 * A tar writer (POSIX ustar, with pax headers for what ustar cannot hold: long or non-ASCII names and link
 * targets, sizes of 8 GiB and more), so that a handful of files can travel to the pod in one exec of `tar -x`,
 * without SSH. GNU tar and BusyBox tar both read it.
 *
 * The archive is padded to whole 10 KiB records, as tar writes them: tar then has all it reads before it meets the
 * end-of-archive blocks, so it ends even where exec cannot pass the end of stdin (protocol v4).
 */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'

export interface TarEntry {
  /** Relative, `/`-separated. */
  name: string
  type: 'file' | 'dir' | 'symlink'
  mode: number
  /** Seconds. */
  mtime: number
  /** For files: the local file to read and its size. */
  source?: string
  size?: number
  /** For symlinks. */
  target?: string
}

const block = 512
const record = 20 * block
const ustarSizeLimit = 0o77777777777

/** The archive, chunk by chunk; `hashes` receives each file's SHA-256 (hex) by name as it is read. */
export async function* tarStream(entries: readonly TarEntry[], hashes?: Map<string, string>): AsyncGenerator<Buffer> {
  let written = 0
  const emit = (chunk: Buffer) => {
    written += chunk.length
    return chunk
  }
  for (const entry of entries) {
    const size = entry.type === 'file' ? (entry.size ?? 0) : 0
    for (const header of headers(entry, size)) yield emit(header)
    if (entry.type !== 'file' || !entry.source) continue
    const hash = createHash('sha256')
    const handle = await open(entry.source, 'r')
    try {
      let position = 0
      while (position < size) {
        const length = Math.min(256 * 1024, size - position)
        const buffer = Buffer.alloc(length)
        const { bytesRead } = await handle.read(buffer, 0, length, position)
        if (bytesRead === 0) throw new Error(`${entry.source} shrank while it was being sent`)
        const chunk = buffer.subarray(0, bytesRead)
        hash.update(chunk)
        position += bytesRead
        yield emit(chunk)
      }
    } finally {
      await handle.close()
    }
    hashes?.set(entry.name, hash.digest('hex'))
    const padding = (block - (size % block)) % block
    if (padding > 0) yield emit(Buffer.alloc(padding))
  }
  // Two zero blocks end the archive; then up to a whole record.
  const end = 2 * block
  const total = written + end
  yield emit(Buffer.alloc(end + ((record - (total % record)) % record)))
}

/** The header block(s) for one entry: a pax extended header first when ustar alone cannot say it. */
export function headers(entry: TarEntry, size: number): Buffer[] {
  const name = entry.type === 'dir' && !entry.name.endsWith('/') ? `${entry.name}/` : entry.name
  const pax: [string, string][] = []
  const split = splitName(name)
  if (!split) pax.push(['path', name])
  const target = entry.target ?? ''
  if (Buffer.byteLength(target) > 100 || !isAscii(target)) pax.push(['linkpath', target])
  if (size > ustarSizeLimit) pax.push(['size', String(size)])

  const result: Buffer[] = []
  if (pax.length > 0) {
    const body = Buffer.from(pax.map(([key, value]) => paxRecord(key, value)).join(''), 'utf8')
    result.push(
      ustarHeader({
        name: 'PaxHeader',
        prefix: '',
        type: 'x',
        mode: 0o644,
        mtime: entry.mtime,
        size: body.length,
        target: '',
      }),
    )
    result.push(body, Buffer.alloc((block - (body.length % block)) % block))
  }
  result.push(
    ustarHeader({
      name: split?.name ?? asciiFallback(name).slice(-100),
      prefix: split?.prefix ?? '',
      type: entry.type === 'file' ? '0' : entry.type === 'dir' ? '5' : '2',
      mode: entry.mode,
      mtime: entry.mtime,
      size: size > ustarSizeLimit ? 0 : size,
      target: Buffer.byteLength(target) > 100 || !isAscii(target) ? '' : target,
    }),
  )
  return result
}

function ustarHeader(fields: {
  name: string
  prefix: string
  type: string
  mode: number
  mtime: number
  size: number
  target: string
}): Buffer {
  const header = Buffer.alloc(block)
  header.write(fields.name, 0, 100, 'utf8')
  header.write(octal(fields.mode & 0o7777, 8), 100, 'ascii')
  header.write(octal(0, 8), 108, 'ascii')
  header.write(octal(0, 8), 116, 'ascii')
  header.write(octal(fields.size, 12), 124, 'ascii')
  header.write(octal(Math.max(0, Math.floor(fields.mtime)), 12), 136, 'ascii')
  header.write(' '.repeat(8), 148, 'ascii')
  header.write(fields.type, 156, 'ascii')
  header.write(fields.target, 157, 100, 'utf8')
  header.write('ustar\u000000', 257, 'ascii')
  header.write(fields.prefix, 345, 155, 'utf8')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'ascii')
  return header
}

/** ustar's name field holds 100 bytes, and a 155-byte prefix split at a `/`; ASCII only, to be read everywhere. */
function splitName(name: string): { name: string; prefix: string } | undefined {
  if (!isAscii(name)) return undefined
  if (name.length <= 100) return { name, prefix: '' }
  for (let cut = name.indexOf('/'); cut >= 0; cut = name.indexOf('/', cut + 1)) {
    const prefix = name.slice(0, cut)
    const rest = name.slice(cut + 1)
    if (prefix.length <= 155 && rest.length <= 100 && rest.length > 0) return { name: rest, prefix }
  }
  return undefined
}

/** "%d %s=%s\n", where the length counts the whole record, its own digits included. */
export function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`
  const bodyLength = Buffer.byteLength(body)
  let length = bodyLength + String(bodyLength).length
  if (String(length).length !== String(bodyLength).length) length = bodyLength + String(length).length
  return `${length}${body}`
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\u0000`
}

function isAscii(text: string): boolean {
  return /^[\x20-\x7e]*$/.test(text)
}

function asciiFallback(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '_')
}
