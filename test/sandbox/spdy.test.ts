import { randomBytes } from 'node:crypto'
import zlib from 'node:zlib'
import { describe, expect, it, vi } from 'vitest'
import {
  adler32,
  type ByteTransport,
  decodeHeaderBlock,
  encodeControlFrame,
  encodeDataFrame,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSynStream,
  FLAG_FIN,
  FrameParser,
  FrameType,
  HeaderCompressor,
  HeaderDecompressor,
  MAX_FRAME_PAYLOAD,
  RstStatus,
  SPDY_DICTIONARY,
  type SpdyFrame,
  SpdySession,
  type SpdyStream,
} from './spdy.js'

/**
 * What spdystream does on the client side: one real zlib deflate context for all header blocks of the
 * connection, each block ending with a sync flush. Using real zlib (not our stored-block encoder) keeps the
 * decoder honest: it must handle back-references into earlier blocks and into the dictionary.
 */
class ClientHeaderDeflater {
  private readonly deflate = zlib.createDeflate({ dictionary: SPDY_DICTIONARY, level: 9 })
  private output: Buffer[] = []

  constructor() {
    this.deflate.on('data', (chunk: Buffer) => this.output.push(chunk))
  }

  compress(headers: Record<string, string>): Promise<Buffer> {
    return new Promise((resolve) => {
      this.deflate.write(encodeHeaderBlock(headers))
      this.deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        resolve(Buffer.concat(this.output))
        this.output = []
      })
    })
  }

  close(): void {
    this.deflate.close()
  }
}

/** A transport that records what the session writes. */
function recordingTransport(): ByteTransport & { written: Buffer[]; ended: boolean; destroyed: boolean } {
  const transport = {
    written: [] as Buffer[],
    ended: false,
    destroyed: false,
    write(chunk: Buffer, onFlushed?: () => void) {
      transport.written.push(chunk)
      onFlushed?.()
    },
    end() {
      transport.ended = true
    },
    destroy() {
      transport.destroyed = true
    },
  }
  return transport
}

/** Gives the session time to do something it should not (used to check that nothing was written). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve))
}

function hex(buffer: Buffer): string {
  return buffer.toString('hex').replace(/(..)/g, '$1 ').trim()
}

describe('SPDY dictionary', () => {
  it('is the 1423-byte SPDY/3 dictionary with adler32 0xE3C6A7C2', () => {
    expect(SPDY_DICTIONARY.length).toBe(1423)
    expect(adler32(SPDY_DICTIONARY)).toBe(0xe3c6a7c2)
  })

  it('is the dictionary zlib itself identifies as 0xE3C6A7C2 (independent adler32)', () => {
    // A zlib stream with FDICT carries the dictionary's adler32, computed here by zlib rather than by our code.
    const stream = zlib.deflateSync(Buffer.from('x'), { dictionary: SPDY_DICTIONARY })
    expect(stream[1]! & 0x20).toBe(0x20) // FDICT
    expect(stream.readUInt32BE(2)).toBe(0xe3c6a7c2)
  })

  it('starts and ends with the bytes of the published table', () => {
    expect(hex(SPDY_DICTIONARY.subarray(0, 16))).toBe('00 00 00 07 6f 70 74 69 6f 6e 73 00 00 00 04 68')
    expect(SPDY_DICTIONARY.subarray(-16).toString('latin1')).toBe('-1,utf-,*,enq=0.')
  })
})

describe('frame parser', () => {
  const frames = [
    encodeControlFrame(FrameType.Settings, 0, Buffer.alloc(12)),
    encodeDataFrame(1, Buffer.from('hello')),
    encodeDataFrame(3, Buffer.alloc(0), true),
    encodePing(7),
    encodeDataFrame(5, randomBytes(70_000)),
    encodeGoAway(5, 0),
  ]
  const stream = Buffer.concat(frames)

  function check(parsed: SpdyFrame[]): void {
    expect(
      parsed.map((f) => (f.kind === 'data' ? `d${f.streamId}/${f.flags}/${f.data.length}` : `c${f.type}`)),
    ).toEqual(['c4', 'd1/0/5', 'd3/1/0', 'c6', 'd5/0/70000', 'c7'])
    const big = parsed[4]
    expect(big?.kind === 'data' && big.data.equals(frames[4]!.subarray(8))).toBe(true)
  }

  it('parses frames that arrive in one piece', () => {
    check(new FrameParser().push(stream))
  })

  it('parses frames split at every byte, with empty chunks in between (as kubectl tunnels them)', () => {
    const parser = new FrameParser()
    const parsed: SpdyFrame[] = []
    for (let i = 0; i < stream.length; i++) {
      parsed.push(...parser.push(stream.subarray(i, i + 1)))
      if (i % 3 === 0) parsed.push(...parser.push(Buffer.alloc(0)))
    }
    check(parsed)
    expect(parser.pendingBytes).toBe(0)
  })

  it('parses frames split at random places', () => {
    for (let round = 0; round < 20; round++) {
      const parser = new FrameParser()
      const parsed: SpdyFrame[] = []
      let offset = 0
      while (offset < stream.length) {
        const size = Math.floor(Math.random() * 9000)
        parsed.push(...parser.push(stream.subarray(offset, offset + size)))
        offset += size
      }
      check(parsed)
    }
  })

  it('holds back an incomplete frame', () => {
    const parser = new FrameParser()
    expect(parser.push(stream.subarray(0, 19))).toHaveLength(0)
    expect(parser.pendingBytes).toBe(19)
    expect(parser.push(stream.subarray(19, 20))).toHaveLength(1)
  })

  it('rejects a control frame of another SPDY version', () => {
    const v2 = encodePing(1)
    v2.writeUInt16BE(0x8002, 0)
    expect(() => new FrameParser().push(v2)).toThrow(/unsupported SPDY version 2/)
  })
})

describe('header blocks', () => {
  it('round-trips plain blocks, lower-casing names and splitting NUL-joined values', () => {
    const block = encodeHeaderBlock({ StreamType: 'data', port: '22', multi: ['a', 'b'] })
    expect([...decodeHeaderBlock(block)]).toEqual([
      ['streamtype', ['data']],
      ['port', ['22']],
      ['multi', ['a', 'b']],
    ])
  })

  it('rejects truncated blocks', () => {
    const block = encodeHeaderBlock({ port: '22' })
    expect(() => decodeHeaderBlock(block.subarray(0, block.length - 1))).toThrow(/truncated/)
  })

  it('stored-block encoding is a zlib stream that real zlib inflates, block by block', () => {
    const compressor = new HeaderCompressor()
    const blocks = [
      encodeHeaderBlock({}),
      encodeHeaderBlock({ a: 'b' }),
      encodeHeaderBlock({ big: 'x'.repeat(70_000) }), // more than one stored block (65535 max)
      encodeHeaderBlock({ c: 'd' }),
    ]
    let stream = Buffer.alloc(0)
    let inflatedSoFar = 0
    for (const block of blocks) {
      const compressed = compressor.compress(block)
      // The sync-flush trailer every block must end with (without it Go's reader holds the bytes back).
      expect(hex(compressed.subarray(-5))).toBe('00 00 00 ff ff')
      stream = Buffer.concat([stream, compressed])
      const plain = zlib.inflateSync(stream, {
        dictionary: SPDY_DICTIONARY,
        finishFlush: zlib.constants.Z_SYNC_FLUSH,
      })
      expect(plain.subarray(inflatedSoFar).equals(block)).toBe(true)
      inflatedSoFar = plain.length
    }
  })

  it('the empty block is the exact bytes kubectl accepted', () => {
    const compressor = new HeaderCompressor()
    expect(hex(compressor.compress(encodeHeaderBlock({})))).toBe(
      '78 bb e3 c6 a7 c2 00 04 00 fb ff 00 00 00 00 00 00 00 ff ff',
    )
    expect(hex(compressor.compress(encodeHeaderBlock({})))).toBe('00 04 00 fb ff 00 00 00 00 00 00 00 ff ff')
  })

  it('inflates a connection-long zlib stream across several blocks, which a fresh context cannot', async () => {
    const deflater = new ClientHeaderDeflater()
    const headers = [
      { streamtype: 'error', port: '22', requestid: '0' },
      { streamtype: 'data', port: '22', requestid: '0' },
      { streamtype: 'error', port: '22', requestid: '1' },
    ]
    const compressed: Buffer[] = []
    for (const h of headers) compressed.push(await deflater.compress(h))
    deflater.close()
    // Later blocks refer back to earlier ones, so they are much smaller: this is what makes the test meaningful.
    expect(compressed[1]!.length).toBeLessThan(compressed[0]!.length)

    const decompressor = new HeaderDecompressor()
    for (const [i, block] of compressed.entries()) {
      const plain = await decompressor.decompress(block)
      expect(Object.fromEntries([...decodeHeaderBlock(plain)].map(([k, v]) => [k, v[0]]))).toEqual(headers[i])
    }
    decompressor.close()

    const fresh = new HeaderDecompressor()
    await expect(fresh.decompress(compressed[1]!)).rejects.toThrow()
    fresh.close()
  })
})

describe('SpdySession', () => {
  async function openSession() {
    const transport = recordingTransport()
    const session = new SpdySession(transport)
    const streams: SpdyStream[] = []
    session.on('stream', (stream) => {
      streams.push(stream)
    })
    const deflater = new ClientHeaderDeflater()
    // Resolves once the session has inflated the headers and announced the stream.
    const syn = async (id: number, headers: Record<string, string>, flags = 0) => {
      const count = streams.length
      session.receive(encodeSynStream(id, await deflater.compress(headers), flags))
      await vi.waitFor(() => expect(streams.length).toBe(count + 1), { timeout: 2000, interval: 2 })
    }
    return { transport, session, streams, deflater, syn }
  }

  it('writes nothing until the client speaks, and nothing in answer to SETTINGS', async () => {
    const { transport, session, deflater } = await openSession()
    await settle()
    session.receive(encodeControlFrame(FrameType.Settings, 0, Buffer.from('0000000100000007000000c8', 'hex')))
    session.receive(encodeControlFrame(FrameType.WindowUpdate, 0, Buffer.alloc(8)))
    await settle()
    expect(transport.written).toEqual([])
    deflater.close()
    session.destroy()
  })

  it('answers kubectl-like SYN_STREAMs with the exact SYN_REPLY bytes kubectl accepted', async () => {
    const { transport, session, streams, deflater, syn } = await openSession()
    await syn(1, { streamtype: 'error', port: '22', requestid: '0' })
    await syn(3, { streamtype: 'data', port: '22', requestid: '0' })
    expect(streams.map((s) => [s.id, s.header('StreamType'), s.header('port'), s.header('requestid')])).toEqual([
      [1, 'error', '22', '0'],
      [3, 'data', '22', '0'],
    ])
    for (const stream of streams) stream.reply()
    expect(transport.written.map(hex)).toEqual([
      '80 03 00 02 00 00 00 18 00 00 00 01 78 bb e3 c6 a7 c2 00 04 00 fb ff 00 00 00 00 00 00 00 ff ff',
      '80 03 00 02 00 00 00 12 00 00 00 03 00 04 00 fb ff 00 00 00 00 00 00 00 ff ff',
    ])
    deflater.close()
    session.destroy()
  })

  it('parses a SYN_STREAM delivered one byte at a time, with data frames right behind it', async () => {
    const { session, streams, deflater } = await openSession()
    const frames = Buffer.concat([
      encodeSynStream(1, await deflater.compress({ streamtype: 'data', port: '80' })),
      encodeDataFrame(1, Buffer.from('abc')),
      encodeDataFrame(1, Buffer.from('def'), true),
    ])
    const received: string[] = []
    session.on('stream', (stream) => {
      stream.on('data', (chunk) => received.push(chunk.toString()))
      stream.on('end', () => received.push('<fin>'))
    })
    for (const byte of frames) session.receive(Buffer.of(byte))
    // Data queued behind the asynchronous header inflate still arrives, in order.
    await vi.waitFor(() => expect(received).toEqual(['abc', 'def', '<fin>']), { timeout: 2000, interval: 2 })
    expect(streams[0]?.header('port')).toBe('80')
    deflater.close()
    session.destroy()
  })

  it('half-closes both ways with FIN and then closes the stream', async () => {
    const { transport, session, streams, deflater, syn } = await openSession()
    await syn(1, { streamtype: 'data', port: '22' })
    const stream = streams[0]!
    let closed = false
    stream.on('close', () => {
      closed = true
    })
    stream.reply()
    stream.write(Buffer.from('out'))
    stream.end()
    expect(closed).toBe(false)
    session.receive(encodeDataFrame(1, Buffer.alloc(0), true))
    expect(closed).toBe(true)
    expect(transport.written.slice(1).map(hex)).toEqual(['00 00 00 01 00 00 00 03 6f 75 74', '00 00 00 01 01 00 00 00'])
    deflater.close()
    session.destroy()
  })

  it('splits writes larger than a frame can hold', async () => {
    const { transport, session, streams, deflater, syn } = await openSession()
    await syn(1, { streamtype: 'data', port: '22' })
    streams[0]!.reply()
    const data = randomBytes(MAX_FRAME_PAYLOAD + 10)
    streams[0]!.write(data)
    const frames = new FrameParser().push(Buffer.concat(transport.written.slice(1)))
    expect(frames.map((f) => (f.kind === 'data' ? f.data.length : -1))).toEqual([MAX_FRAME_PAYLOAD, 10])
    // .equals: a failing toEqual on 16 MiB would make the diff printer run out of memory.
    expect(Buffer.concat(frames.map((f) => (f.kind === 'data' ? f.data : Buffer.alloc(0)))).equals(data)).toBe(true)
    deflater.close()
    session.destroy()
  })

  it('reports RST_STREAM from the client and sends RST_STREAM(CANCEL) on reset()', async () => {
    const { transport, session, streams, deflater, syn } = await openSession()
    await syn(1, { streamtype: 'data', port: '22' })
    await syn(3, { streamtype: 'data', port: '22' })
    const statuses: number[] = []
    streams[0]!.on('reset', (status) => statuses.push(status))
    session.receive(encodeRstStream(1, RstStatus.Cancel))
    expect(statuses).toEqual([RstStatus.Cancel])
    expect(streams[0]!.closed).toBe(true)
    streams[1]!.reset()
    expect(hex(transport.written.at(-1)!)).toBe('80 03 00 03 00 00 00 08 00 00 00 03 00 00 00 05')
    deflater.close()
    session.destroy()
  })

  it('echoes client PINGs (odd ids) and ignores even ones', async () => {
    const { transport, session, deflater } = await openSession()
    session.receive(encodePing(1))
    session.receive(encodePing(2))
    session.receive(encodePing(3))
    expect(transport.written.map(hex)).toEqual([hex(encodePing(1)), hex(encodePing(3))])
    deflater.close()
    session.destroy()
  })

  it('reports GOAWAY, and answers data for an unknown stream with RST_STREAM(INVALID_STREAM)', async () => {
    const { transport, session, deflater } = await openSession()
    const goaways: number[][] = []
    session.on('goaway', (last, status) => goaways.push([last, status]))
    session.receive(encodeGoAway(9, 0))
    expect(goaways).toEqual([[9, 0]])
    session.receive(encodeDataFrame(41, Buffer.from('x')))
    expect(hex(transport.written.at(-1)!)).toBe(hex(encodeRstStream(41, RstStatus.InvalidStream)))
    deflater.close()
    session.destroy()
  })

  it('a SYN_STREAM with FIN is already half-closed by the client', async () => {
    const { session, deflater, syn } = await openSession()
    const events: string[] = []
    session.on('stream', (stream) => stream.on('end', () => events.push(`end ${stream.id}`)))
    await syn(1, { streamtype: 'error', port: '22' }, FLAG_FIN)
    expect(events).toEqual(['end 1'])
    deflater.close()
    session.destroy()
  })

  it('on a protocol error sends GOAWAY(PROTOCOL_ERROR), destroys the transport and closes its streams', async () => {
    const { transport, session, streams, deflater, syn } = await openSession()
    await syn(1, { streamtype: 'data', port: '22' })
    const closes: (Error | undefined)[] = []
    session.on('close', (error) => closes.push(error))
    session.receive(Buffer.from('80020006000000040000000f', 'hex')) // a SPDY/2 PING
    expect(hex(transport.written.at(-1)!)).toBe('80 03 00 07 00 00 00 08 00 00 00 01 00 00 00 01')
    expect(transport.destroyed).toBe(true)
    expect(streams[0]!.closed).toBe(true)
    expect(closes).toHaveLength(1)
    expect(closes[0]?.message).toMatch(/version 2/)
    deflater.close()
  })

  it('a header block that does not inflate is a protocol error', async () => {
    const { transport, session, deflater } = await openSession()
    session.receive(encodeSynStream(1, Buffer.from('not zlib at all')))
    await vi.waitFor(() => expect(transport.destroyed).toBe(true), { timeout: 2000 })
    expect(session.closed).toBe(true)
    deflater.close()
  })

  it('end() says GOAWAY(OK) with the last stream id and closes the transport gracefully', async () => {
    const { transport, session, deflater, syn } = await openSession()
    await syn(5, { streamtype: 'data', port: '22' })
    session.end()
    expect(hex(transport.written.at(-1)!)).toBe('80 03 00 07 00 00 00 08 00 00 00 05 00 00 00 00')
    expect(transport.ended).toBe(true)
    expect(transport.destroyed).toBe(false)
    deflater.close()
  })
})
