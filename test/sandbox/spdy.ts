/**
 * A server-side SPDY/3.1 codec: just the subset that kubectl's port-forward client (Go `moby/spdystream`) uses,
 * both on the direct `Upgrade: SPDY/3.1` socket and inside the `SPDY/3.1+portforward.k8s.io` WebSocket tunnel.
 * Spec: /work/shared/reference/kubernetes-streaming-protocols.md §6.3.
 *
 * Deliberate omissions, each because spdystream behaves that way:
 * - no flow control: spdystream never sends WINDOW_UPDATE, so enforcing the 64 KiB window would stall forever;
 * - no server-initiated streams, pings or SETTINGS: the server speaks only when spoken to (on the direct upgrade,
 *   kubectl may swallow bytes that arrive before its first frame);
 * - header blocks are *sent* as zlib stored blocks, so no compressor is needed.
 */
import { EventEmitter } from 'node:events'
import zlib from 'node:zlib'

// ---------------------------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------------------------

export const SPDY_VERSION = 3

export const FrameType = {
  SynStream: 1,
  SynReply: 2,
  RstStream: 3,
  Settings: 4,
  Noop: 5,
  Ping: 6,
  GoAway: 7,
  Headers: 8,
  WindowUpdate: 9,
} as const

/** FIN on DATA, SYN_STREAM, SYN_REPLY and HEADERS frames. */
export const FLAG_FIN = 0x01

export const RstStatus = {
  ProtocolError: 1,
  InvalidStream: 2,
  RefusedStream: 3,
  UnsupportedVersion: 4,
  Cancel: 5,
  InternalError: 6,
  FlowControlError: 7,
  StreamInUse: 8,
  StreamAlreadyClosed: 9,
  FrameTooLarge: 11,
} as const

export const GoAwayStatus = { Ok: 0, ProtocolError: 1, InternalError: 2 } as const

/** The length field is 24 bits wide. */
export const MAX_FRAME_PAYLOAD = 0xff_ffff

const FRAME_HEADER_LENGTH = 8

/**
 * The SPDY/3 header-compression dictionary (draft-mbelshe-httpbis-spdy-00 §2.6.10.1; the same 1423 bytes as
 * `headerDictionaryV3` in moby/spdystream). It is built from its structure rather than pasted as hex so that it
 * can be read and reviewed: a list of 4-byte-length-prefixed header names and values, then a run of raw text.
 * spdy.test.ts pins the length and adler32 (0xE3C6A7C2, which is also the dictionary id in the zlib header).
 */
export const SPDY_DICTIONARY: Buffer = buildDictionary()

function buildDictionary(): Buffer {
  // biome-ignore format: one long word list reads better packed than one word a line
  const prefixed = [
    'options', 'head', 'post', 'put', 'delete', 'trace', 'accept', 'accept-charset', 'accept-encoding',
    'accept-language', 'accept-ranges', 'age', 'allow', 'authorization', 'cache-control', 'connection',
    'content-base', 'content-encoding', 'content-language', 'content-length', 'content-location', 'content-md5',
    'content-range', 'content-type', 'date', 'etag', 'expect', 'expires', 'from', 'host', 'if-match',
    'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since', 'last-modified', 'location',
    'max-forwards', 'pragma', 'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'retry-after',
    'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent', 'vary', 'via', 'warning',
    'www-authenticate', 'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url', 'public', 'set-cookie',
    'keep-alive', 'origin',
  ]
  const raw =
    '100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505' +
    '203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized' +
    '403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable' +
    'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
    'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,' +
    'text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.'
  const parts: Buffer[] = []
  for (const word of prefixed) parts.push(uint32(word.length), Buffer.from(word, 'latin1'))
  parts.push(Buffer.from(raw, 'latin1'))
  return Buffer.concat(parts)
}

// ---------------------------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------------------------

export type SpdyFrame =
  | { readonly kind: 'data'; readonly streamId: number; readonly flags: number; readonly data: Buffer }
  | { readonly kind: 'control'; readonly type: number; readonly flags: number; readonly payload: Buffer }

export class SpdyProtocolError extends Error {
  override readonly name = 'SpdyProtocolError'
}

/**
 * Cuts frames out of a byte stream that arrives in arbitrary pieces: kubectl's tunnel writes a single
 * SYN_STREAM as eight WebSocket messages (2, 2, 4, 4, 4, 1, 1, 51 bytes) and sends empty messages too.
 */
export class FrameParser {
  /** Unconsumed input; chunks before `head` are used up (an index, because shift() on many tiny chunks is slow). */
  private chunks: Buffer[] = []
  private head = 0
  private buffered = 0

  /** Adds bytes and returns every frame they complete, in order. Throws SpdyProtocolError on a non-v3 frame. */
  push(chunk: Buffer): SpdyFrame[] {
    if (chunk.length > 0) {
      this.chunks.push(chunk)
      this.buffered += chunk.length
    }
    const frames: SpdyFrame[] = []
    while (this.buffered >= FRAME_HEADER_LENGTH) {
      const length = this.peekHeader().readUIntBE(5, 3)
      if (this.buffered < FRAME_HEADER_LENGTH + length) break
      frames.push(decodeFrame(this.take(FRAME_HEADER_LENGTH + length)))
    }
    return frames
  }

  /** Bytes held back because they do not complete a frame yet. */
  get pendingBytes(): number {
    return this.buffered
  }

  /** The next 8 bytes; copies at most 8 chunks, so that a frame trickling in byte by byte stays linear. */
  private peekHeader(): Buffer {
    const first = this.chunks[this.head]!
    if (first.length >= FRAME_HEADER_LENGTH) return first
    const header = Buffer.alloc(FRAME_HEADER_LENGTH)
    let filled = 0
    for (let i = this.head; filled < FRAME_HEADER_LENGTH; i++) {
      filled += this.chunks[i]!.copy(header, filled, 0, Math.min(this.chunks[i]!.length, FRAME_HEADER_LENGTH - filled))
    }
    return header
  }

  private take(n: number): Buffer {
    this.buffered -= n
    const first = this.chunks[this.head]!
    let out: Buffer
    if (first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.head++
      else this.chunks[this.head] = first.subarray(n)
    } else {
      out = Buffer.allocUnsafe(n)
      let filled = 0
      while (filled < n) {
        const chunk = this.chunks[this.head]!
        const used = Math.min(chunk.length, n - filled)
        chunk.copy(out, filled, 0, used)
        filled += used
        if (used === chunk.length) this.head++
        else this.chunks[this.head] = chunk.subarray(used)
      }
    }
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.head = 0
    } else if (this.head > 1024) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
    return out
  }
}

function decodeFrame(frame: Buffer): SpdyFrame {
  const flags = frame[4]!
  const body = frame.subarray(FRAME_HEADER_LENGTH)
  if ((frame[0]! & 0x80) === 0) {
    return { kind: 'data', streamId: frame.readUInt32BE(0) & 0x7fff_ffff, flags, data: body }
  }
  const version = frame.readUInt16BE(0) & 0x7fff
  if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`)
  return { kind: 'control', type: frame.readUInt16BE(2), flags, payload: body }
}

export function encodeControlFrame(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new RangeError('SPDY control frame payload too large')
  const header = Buffer.alloc(FRAME_HEADER_LENGTH)
  header.writeUInt16BE(0x8000 | SPDY_VERSION, 0)
  header.writeUInt16BE(type, 2)
  header.writeUInt32BE(payload.length, 4) // the low 24 bits; byte 4 is then overwritten by the flags
  header[4] = flags
  return Buffer.concat([header, payload])
}

/** One DATA frame; `data` must fit in MAX_FRAME_PAYLOAD (SpdyStream.write splits larger writes). */
export function encodeDataFrame(streamId: number, data: Buffer, fin = false): Buffer {
  if (data.length > MAX_FRAME_PAYLOAD) throw new RangeError('SPDY data frame payload too large')
  const frame = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + data.length)
  frame.writeUInt32BE(streamId & 0x7fff_ffff, 0)
  frame.writeUInt32BE(data.length, 4)
  frame[4] = fin ? FLAG_FIN : 0
  data.copy(frame, FRAME_HEADER_LENGTH)
  return frame
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  const payload = Buffer.alloc(8)
  payload.writeUInt32BE(streamId & 0x7fff_ffff, 0)
  payload.writeUInt32BE(status, 4)
  return encodeControlFrame(FrameType.RstStream, 0, payload)
}

export function encodeGoAway(lastGoodStreamId: number, status: number): Buffer {
  const payload = Buffer.alloc(8)
  payload.writeUInt32BE(lastGoodStreamId & 0x7fff_ffff, 0)
  payload.writeUInt32BE(status, 4)
  return encodeControlFrame(FrameType.GoAway, 0, payload)
}

export function encodePing(id: number): Buffer {
  return encodeControlFrame(FrameType.Ping, 0, uint32(id))
}

/** `compressedHeaders` is the output of HeaderCompressor.compress for this connection. */
export function encodeSynReply(streamId: number, compressedHeaders: Buffer, fin = false): Buffer {
  return encodeControlFrame(
    FrameType.SynReply,
    fin ? FLAG_FIN : 0,
    Buffer.concat([uint32(streamId & 0x7fff_ffff), compressedHeaders]),
  )
}

/** A client's SYN_STREAM; the server never opens streams, but tests speak as the client. */
export function encodeSynStream(streamId: number, compressedHeaders: Buffer, flags = 0): Buffer {
  // assoc-id 0, priority 0 (spdystream's default priority), slot 0.
  return encodeControlFrame(
    FrameType.SynStream,
    flags,
    Buffer.concat([uint32(streamId & 0x7fff_ffff), uint32(0), Buffer.of(0, 0), compressedHeaders]),
  )
}

/** The fields of a SYN_STREAM payload other than its (compressed) header block. */
export interface SynStreamFields {
  streamId: number
  associatedStreamId: number
  priority: number
  headerBlock: Buffer
}

export function parseSynStream(payload: Buffer): SynStreamFields {
  if (payload.length < 10) throw new SpdyProtocolError('SYN_STREAM frame too short')
  return {
    streamId: payload.readUInt32BE(0) & 0x7fff_ffff,
    associatedStreamId: payload.readUInt32BE(4) & 0x7fff_ffff,
    priority: payload[8]! >> 5,
    headerBlock: payload.subarray(10),
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Header blocks
// ---------------------------------------------------------------------------------------------------------------

/** Header names are lower-case; a name with several values maps to all of them (they travel joined by NUL). */
export type SpdyHeaders = ReadonlyMap<string, readonly string[]>

/** The uncompressed form: uint32 count, then uint32-length-prefixed name and value for each pair. */
export function encodeHeaderBlock(headers: Record<string, string | readonly string[]>): Buffer {
  const entries = Object.entries(headers)
  const parts: Buffer[] = [uint32(entries.length)]
  for (const [name, value] of entries) {
    const joined = typeof value === 'string' ? value : value.join('\0')
    const nameBytes = Buffer.from(name.toLowerCase(), 'utf8')
    const valueBytes = Buffer.from(joined, 'utf8')
    parts.push(uint32(nameBytes.length), nameBytes, uint32(valueBytes.length), valueBytes)
  }
  return Buffer.concat(parts)
}

export function decodeHeaderBlock(block: Buffer): Map<string, string[]> {
  const headers = new Map<string, string[]>()
  let offset = 0
  const read = (): string => {
    if (offset + 4 > block.length) throw new SpdyProtocolError('truncated SPDY header block')
    const length = block.readUInt32BE(offset)
    offset += 4
    if (offset + length > block.length) throw new SpdyProtocolError('truncated SPDY header block')
    const text = block.toString('utf8', offset, offset + length)
    offset += length
    return text
  }
  if (block.length < 4) throw new SpdyProtocolError('truncated SPDY header block')
  const count = block.readUInt32BE(0)
  offset = 4
  for (let i = 0; i < count; i++) {
    const name = read().toLowerCase()
    const values = read().split('\0')
    headers.set(name, [...(headers.get(name) ?? []), ...values])
  }
  if (offset !== block.length) throw new SpdyProtocolError('trailing bytes after SPDY header block')
  return headers
}

/**
 * Compresses header blocks without compressing: each block becomes zlib *stored* deflate blocks followed by an
 * empty stored block (`00 00 00 FF FF`, what zlib emits for Z_SYNC_FLUSH). Go's flate reader only hands out the
 * bytes of a stored block once it has seen the next block header, so without that trailer kubectl does not see a
 * SYN_REPLY's headers until the next one arrives, and it reset the connection on the second SYN_REPLY (observed).
 * All blocks of one direction form one zlib stream, so the zlib header (with the dictionary id) goes out once.
 */
export class HeaderCompressor {
  private started = false

  compress(plainBlock: Buffer): Buffer {
    const parts: Buffer[] = []
    if (!this.started) {
      // CMF 0x78 (deflate, 32 KiB window), FLG 0xBB (FDICT set, check bits), then the dictionary's adler32.
      parts.push(Buffer.from([0x78, 0xbb]), uint32(adler32(SPDY_DICTIONARY)))
      this.started = true
    }
    for (let offset = 0; offset < plainBlock.length; offset += 0xffff) {
      const piece = plainBlock.subarray(offset, offset + 0xffff)
      parts.push(storedBlockHeader(piece.length), piece)
    }
    parts.push(storedBlockHeader(0))
    return Buffer.concat(parts)
  }
}

/** BFINAL=0, BTYPE=00 and padding to the byte boundary (always one zero byte here), then LEN and NLEN (LE). */
function storedBlockHeader(length: number): Buffer {
  const header = Buffer.alloc(5)
  header.writeUInt16LE(length, 1)
  header.writeUInt16LE(~length & 0xffff, 3)
  return header
}

/**
 * Inflates the header blocks of one direction of a connection. They form a single zlib stream (each block ends
 * with a sync flush), so one inflate context must see them all, in order. Node's synchronous zlib API cannot keep
 * state between calls; the streaming API can, at the price of being asynchronous (callers serialise).
 */
export class HeaderDecompressor {
  private readonly inflate = zlib.createInflate({ dictionary: SPDY_DICTIONARY })
  private output: Buffer[] = []
  private failure: Error | undefined

  constructor() {
    // Flowing mode: output is pushed (and so collected here) before the flush callback runs.
    this.inflate.on('data', (chunk: Buffer) => this.output.push(chunk))
    this.inflate.on('error', (error) => {
      this.failure = error
    })
  }

  /** Resolves to the plain header block; blocks must be passed in the order they were received. */
  decompress(block: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const fail = (error: Error) => reject(new SpdyProtocolError(`cannot inflate SPDY header block: ${error.message}`))
      if (this.failure) {
        fail(this.failure)
        return
      }
      // After an error the flush callback never runs, so the error itself must settle the promise.
      this.inflate.once('error', fail)
      this.inflate.write(block)
      this.inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        this.inflate.off('error', fail)
        if (this.failure) {
          fail(this.failure)
          return
        }
        const plain = Buffer.concat(this.output)
        this.output = []
        resolve(plain)
      })
    })
  }

  close(): void {
    this.inflate.close()
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Session and streams
// ---------------------------------------------------------------------------------------------------------------

/** The byte pipe a session runs on: a raw socket, or a WebSocket whose binary messages carry the bytes. */
export interface ByteTransport {
  /** `onFlushed` runs once the bytes have been handed to the operating system. */
  write(chunk: Buffer, onFlushed?: () => void): void
  /** Graceful close (FIN, or a WebSocket close 1000). */
  end(): void
  /** Abrupt close. */
  destroy(): void
}

export interface SpdySessionEvents {
  /** A client-initiated stream. Call `reply()` (or `reset()`) on it; data cannot be sent before the reply. */
  stream: [stream: SpdyStream]
  /** The client will open no more streams (kubectl sends GOAWAY(OK) when it finishes). */
  goaway: [lastGoodStreamId: number, status: number]
  /** The session is over; `error` is set on a protocol error. Every stream has been closed before this. */
  close: [error: Error | undefined]
}

/**
 * The server side of one SPDY/3.1 connection. Feed it the transport's bytes with `receive()` and tell it when
 * the transport is gone with `transportClosed()`; it writes replies and data with `transport.write()`.
 */
export class SpdySession extends EventEmitter<SpdySessionEvents> {
  private readonly parser = new FrameParser()
  private readonly inflater = new HeaderDecompressor()
  private readonly deflater = new HeaderCompressor()
  private readonly streams = new Map<number, SpdyStream>()
  private readonly queue: SpdyFrame[] = []
  private draining = false
  private lastStreamId = 0
  private isClosed = false

  constructor(private readonly transport: ByteTransport) {
    super()
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** The highest stream id the client has opened (for GOAWAY's last-good-stream-id). */
  get lastReceivedStreamId(): number {
    return this.lastStreamId
  }

  /** Feeds bytes read from the transport. */
  receive(chunk: Buffer): void {
    if (this.isClosed) return
    let frames: SpdyFrame[]
    try {
      frames = this.parser.push(chunk)
    } catch (error) {
      this.fail(error as Error)
      return
    }
    for (const frame of frames) this.queue.push(frame)
    if (!this.draining) void this.drain()
  }

  /** Graceful end: GOAWAY(OK) as spdystream's Connection.Close sends it, then a graceful transport close. */
  end(): void {
    if (this.isClosed) return
    this.write(encodeGoAway(this.lastStreamId, GoAwayStatus.Ok))
    this.shutdown(undefined)
    this.transport.end()
  }

  /** Abrupt end: the transport is destroyed without a GOAWAY, as when a pod or a proxy disappears. */
  destroy(error?: Error): void {
    if (this.isClosed) return
    this.shutdown(error)
    this.transport.destroy()
  }

  /** The transport has closed under us (EOF or error): nothing more can be written. */
  transportClosed(): void {
    if (this.isClosed) return
    this.shutdown(undefined)
  }

  // Header blocks must be inflated in arrival order and inflating is asynchronous, so frames go through a queue;
  // frames behind a header frame wait for it. Without header frames pending, frames are handled synchronously.
  private async drain(): Promise<void> {
    this.draining = true
    try {
      while (this.queue.length > 0 && !this.isClosed) {
        const frame = this.queue.shift()!
        if (frame.kind === 'data') {
          this.onData(frame.streamId, frame.flags, frame.data)
          continue
        }
        const headerBlock = headerBlockOf(frame.type, frame.payload)
        const headers =
          headerBlock === undefined ? undefined : decodeHeaderBlock(await this.inflater.decompress(headerBlock))
        if (this.isClosed) break
        this.onControl(frame.type, frame.flags, frame.payload, headers)
      }
    } catch (error) {
      this.fail(error as Error)
    } finally {
      this.draining = false
    }
  }

  private onControl(type: number, flags: number, payload: Buffer, headers: Map<string, string[]> | undefined): void {
    switch (type) {
      case FrameType.SynStream:
        this.onSynStream(parseSynStream(payload), flags, headers!)
        return
      case FrameType.RstStream: {
        if (payload.length !== 8) throw new SpdyProtocolError('RST_STREAM frame must be 8 bytes')
        const stream = this.streams.get(payload.readUInt32BE(0) & 0x7fff_ffff)
        stream?.receiveReset(payload.readUInt32BE(4))
        return
      }
      case FrameType.Ping:
        if (payload.length !== 4) throw new SpdyProtocolError('PING frame must be 4 bytes')
        // Odd ids are the client's pings and must be echoed unchanged; even ids would answer pings of ours.
        if (payload.readUInt32BE(0) % 2 === 1) this.write(encodeControlFrame(FrameType.Ping, 0, payload))
        return
      case FrameType.GoAway:
        if (payload.length !== 8) throw new SpdyProtocolError('GOAWAY frame must be 8 bytes')
        this.emit('goaway', payload.readUInt32BE(0) & 0x7fff_ffff, payload.readUInt32BE(4))
        return
      default:
        // SYN_REPLY and HEADERS from the client were inflated (to keep the zlib stream in step) and are ignored;
        // SETTINGS, NOOP and WINDOW_UPDATE are ignored: there is no flow control (see the file comment).
        return
    }
  }

  private onSynStream(syn: SynStreamFields, flags: number, headers: Map<string, string[]>): void {
    if (syn.streamId === 0 || this.streams.has(syn.streamId)) {
      this.write(encodeRstStream(syn.streamId, RstStatus.ProtocolError))
      return
    }
    this.lastStreamId = Math.max(this.lastStreamId, syn.streamId)
    const stream = new SpdyStream(this.streamSink, syn.streamId, headers)
    this.streams.set(syn.streamId, stream)
    this.emit('stream', stream)
    if (flags & FLAG_FIN) stream.receiveData(Buffer.alloc(0), true)
  }

  private onData(streamId: number, flags: number, data: Buffer): void {
    const stream = this.streams.get(streamId)
    if (!stream) {
      // As spdystream does; the client ignores a reset for a stream it has already dropped.
      this.write(encodeRstStream(streamId, RstStatus.InvalidStream))
      return
    }
    stream.receiveData(data, (flags & FLAG_FIN) !== 0)
  }

  /** What streams may do to their session; kept narrow so streams cannot touch other streams. */
  private readonly streamSink: StreamSink = {
    write: (frame, onFlushed) => this.write(frame, onFlushed),
    compressHeaders: (headers) => this.deflater.compress(encodeHeaderBlock(headers)),
    forget: (stream) => {
      if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id)
    },
    isClosed: () => this.isClosed,
  }

  private write(frame: Buffer, onFlushed?: () => void): void {
    if (this.isClosed) onFlushed?.()
    else this.transport.write(frame, onFlushed)
  }

  private fail(error: Error): void {
    if (this.isClosed) return
    const status = error instanceof SpdyProtocolError ? GoAwayStatus.ProtocolError : GoAwayStatus.InternalError
    this.write(encodeGoAway(this.lastStreamId, status))
    this.destroy(error)
  }

  private shutdown(error: Error | undefined): void {
    this.isClosed = true
    this.queue.length = 0
    this.inflater.close()
    for (const stream of [...this.streams.values()]) stream.sessionClosed()
    this.streams.clear()
    this.emit('close', error)
  }
}

interface StreamSink {
  write(frame: Buffer, onFlushed?: () => void): void
  compressHeaders(headers: Record<string, string | readonly string[]>): Buffer
  forget(stream: SpdyStream): void
  isClosed(): boolean
}

export interface SpdyStreamEvents {
  data: [chunk: Buffer]
  /** The client half-closed the stream (FIN). */
  end: []
  /** The client reset the stream (RST_STREAM); `close` follows. */
  reset: [status: number]
  /** The stream is finished: FIN both ways, a reset either way, or the session ended. Emitted once. */
  close: []
}

export class SpdyStream extends EventEmitter<SpdyStreamEvents> {
  private replied = false
  private sentFin = false
  private receivedFin = false
  private isClosed = false

  /** @internal Streams are created by SpdySession. */
  constructor(
    private readonly session: StreamSink,
    readonly id: number,
    readonly headers: SpdyHeaders,
  ) {
    super()
  }

  /** The first value of a header, like Go's `http.Header.Get` (names are matched case-insensitively). */
  header(name: string): string | undefined {
    return this.headers.get(name.toLowerCase())?.[0]
  }

  get closed(): boolean {
    return this.isClosed
  }

  /** True once this side has sent FIN; no more data can be written. */
  get localEnded(): boolean {
    return this.sentFin
  }

  /** True once the client has sent FIN. */
  get remoteEnded(): boolean {
    return this.receivedFin
  }

  /**
   * Sends SYN_REPLY. The client drops DATA that precedes the reply, so this must come first. Never put
   * `connection`, `keep-alive`, `proxy-connection` or `transfer-encoding` here: spdystream rejects them.
   */
  reply(headers: Record<string, string | readonly string[]> = {}): void {
    if (this.replied || this.isClosed) return
    this.replied = true
    this.session.write(encodeSynReply(this.id, this.session.compressHeaders(headers)))
  }

  /** Sends data, split into frames of at most MAX_FRAME_PAYLOAD bytes. Ignored once ended, reset or closed. */
  write(data: Buffer, onFlushed?: () => void): void {
    if (!this.replied) throw new Error(`SPDY stream ${this.id}: write before reply`)
    // Nothing to send, but callers may wait for the flush (to cut a connection after it), so let them go on.
    // An empty DATA frame without FIN means nothing to the client, so none is sent either.
    if (this.sentFin || this.isClosed || data.length === 0) {
      onFlushed?.()
      return
    }
    for (let offset = 0; offset < data.length; offset += MAX_FRAME_PAYLOAD) {
      const piece = data.subarray(offset, offset + MAX_FRAME_PAYLOAD)
      const last = offset + piece.length === data.length
      this.session.write(encodeDataFrame(this.id, piece), last ? onFlushed : undefined)
    }
  }

  /** Half-closes this side: an empty DATA frame with FIN. */
  end(): void {
    if (this.sentFin || this.isClosed) return
    if (!this.replied) this.reply()
    this.sentFin = true
    this.session.write(encodeDataFrame(this.id, Buffer.alloc(0), true))
    if (this.receivedFin) this.finish()
  }

  /** Aborts the stream with RST_STREAM (CANCEL unless told otherwise, as spdystream's Stream.Reset does). */
  reset(status: number = RstStatus.Cancel): void {
    if (this.isClosed) return
    this.session.write(encodeRstStream(this.id, status))
    this.finish()
  }

  /** @internal */
  receiveData(data: Buffer, fin: boolean): void {
    if (this.isClosed) return
    if (this.receivedFin) {
      // Data after the client's own FIN is a protocol error for this stream only.
      this.reset(RstStatus.StreamAlreadyClosed)
      return
    }
    if (data.length > 0) this.emit('data', data)
    if (fin) {
      this.receivedFin = true
      this.emit('end')
      if (this.sentFin) this.finish()
    }
  }

  /** @internal */
  receiveReset(status: number): void {
    if (this.isClosed) return
    this.emit('reset', status)
    this.finish()
  }

  /** @internal */
  sessionClosed(): void {
    if (this.isClosed) return
    this.finish()
  }

  private finish(): void {
    if (this.isClosed) return
    this.isClosed = true
    this.session.forget(this)
    this.emit('close')
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/** The compressed header block inside a frame that carries one (SYN_STREAM, SYN_REPLY, HEADERS). */
function headerBlockOf(type: number, payload: Buffer): Buffer | undefined {
  switch (type) {
    case FrameType.SynStream:
      return parseSynStream(payload).headerBlock
    case FrameType.SynReply:
    case FrameType.Headers:
      if (payload.length < 4) throw new SpdyProtocolError('header frame too short')
      return payload.subarray(4)
    default:
      return undefined
  }
}

function uint32(value: number): Buffer {
  const buffer = Buffer.alloc(4)
  buffer.writeUInt32BE(value >>> 0)
  return buffer
}

export function adler32(data: Buffer): number {
  let a = 1
  let b = 0
  for (const byte of data) {
    a = (a + byte) % 65521
    b = (b + a) % 65521
  }
  return ((b << 16) | a) >>> 0
}
