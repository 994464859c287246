/**
 * The SPDY exec server at the byte level, as a hand-rolled client speaks it (kubectl's side is in
 * test/fidelity/kubectl-exec-spdy.test.ts): the protocol handshake and its refusals, one stream per channel, the
 * command starting only once every expected stream is in, raw payloads, the status on the error stream (v4 JSON,
 * v2 text, v1 none), the FINs, resize, and the stream creation timeout.
 */
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import zlib from 'node:zlib'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import type { PodStreamTarget } from './contracts.js'
import { parseExecRequest } from './exec.js'
import { SPDY_EXEC_PROTOCOLS, serveSpdyExec } from './exec-spdy.js'
import { Sandbox } from './index.js'
import {
  encodeDataFrame,
  encodeGoAway,
  encodeHeaderBlock,
  encodeSynStream,
  FrameParser,
  FrameType,
  SPDY_DICTIONARY,
  type SpdyFrame,
} from './spdy.js'

let sandbox: Sandbox
const sockets = new Set<net.Socket>()

beforeAll(async () => {
  sandbox = await Sandbox.start()
})
afterEach(() => {
  for (const socket of sockets) socket.destroy()
  sockets.clear()
})
afterAll(async () => {
  await sandbox?.stop()
})

/** The client's header compression, as spdystream does it: real zlib, one context, a sync flush per block. */
function headerDeflater() {
  const deflate = zlib.createDeflate({ dictionary: SPDY_DICTIONARY })
  let output: Buffer[] = []
  deflate.on('data', (chunk: Buffer) => output.push(chunk))
  return {
    compress: (headers: Record<string, string>) =>
      new Promise<Buffer>((resolve) => {
        deflate.write(encodeHeaderBlock(headers))
        deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
          resolve(Buffer.concat(output))
          output = []
        })
      }),
    close: () => deflate.close(),
  }
}

interface RawExec {
  socket: net.Socket
  /** Resolves when the connection has closed (whoever closed it). */
  closed: Promise<unknown>
  /** The HTTP response head (status line and headers, with the blank line). */
  response: string
  /** Everything after the head: the body of a refusal, or SPDY frames. */
  after: () => Buffer
  frames: () => SpdyFrame[]
  /** Opens a stream of `type` with id `id` (odd, increasing). */
  open: (id: number, type: string) => Promise<void>
  deflater: ReturnType<typeof headerDeflater>
}

/** POSTs an exec upgrade to the sandbox's API server over TLS, as kubectl's SPDY executor does. */
async function rawExec(query: string, protocolLines: string[], socket?: net.Socket): Promise<RawExec> {
  const connection =
    socket ?? tls.connect({ host: '127.0.0.1', port: Number(new URL(sandbox.url).port), ca: sandbox.pki.caCert })
  sockets.add(connection)
  const closed = once(connection, 'close')
  const path = `/api/v1/namespaces/${sandbox.namespace}/pods/${sandbox.currentPodName}/exec?${query}`
  connection.write(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${sandbox.token}\r\nContent-Length: 0\r\n` +
      'Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
      protocolLines.map((line) => `X-Stream-Protocol-Version: ${line}\r\n`).join('') +
      '\r\n',
  )
  let raw = Buffer.alloc(0)
  connection.on('data', (chunk: Buffer) => {
    raw = Buffer.concat([raw, chunk])
  })
  const end = await vi.waitFor(() => {
    const at = raw.indexOf('\r\n\r\n')
    if (at < 0) throw new Error('no response yet')
    return at + 4
  })
  const deflater = headerDeflater()
  const after = () => raw.subarray(end)
  return {
    socket: connection,
    closed,
    response: raw.subarray(0, end).toString(),
    after,
    frames: () => new FrameParser().push(after()),
    open: async (id, type) => {
      connection.write(encodeSynStream(id, await deflater.compress({ streamtype: type })))
    },
    deflater,
  }
}

/** The payload received on one stream, and whether it was FINned. */
function stream(frames: SpdyFrame[], id: number): { data: string; fin: boolean } {
  const data = frames.filter((f) => f.kind === 'data' && f.streamId === id)
  return {
    data: Buffer.concat(data.map((f) => (f.kind === 'data' ? f.data : Buffer.alloc(0)))).toString(),
    fin: data.some((f) => f.flags & 1),
  }
}

const replies = (frames: SpdyFrame[]) =>
  frames
    .filter((f) => f.kind === 'control' && f.type === FrameType.SynReply)
    .map((f) => (f.kind === 'control' ? f.payload.readUInt32BE(0) : 0))
const resets = (frames: SpdyFrame[]) =>
  frames
    .filter((f) => f.kind === 'control' && f.type === FrameType.RstStream)
    .map((f) => (f.kind === 'control' ? f.payload.readUInt32BE(0) : 0))

const query = (command: string[], flags: string) =>
  `${command.map((part) => `command=${encodeURIComponent(part)}`).join('&')}&${flags}`

describe('handshake', () => {
  it('picks the first version in the client’s order that the kubelet speaks, header lines and lists alike', async () => {
    const kubectlOffer = [
      'v5.channel.k8s.io',
      'v4.channel.k8s.io',
      'v3.channel.k8s.io',
      'v2.channel.k8s.io',
      'channel.k8s.io',
    ]
    const v4 = await rawExec(query(['true'], 'stdout=true'), kubectlOffer)
    expect(v4.response).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        'X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n',
    )
    const v3 = await rawExec(query(['true'], 'stdout=true'), ['v3.channel.k8s.io, v4.channel.k8s.io'])
    expect(v3.response).toContain('X-Stream-Protocol-Version: v3.channel.k8s.io\r\n')
  })

  it('stays silent after the 101 until the client opens a stream', async () => {
    const exec = await rawExec(query(['true'], 'stdout=true'), ['v4.channel.k8s.io'])
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(exec.after().length).toBe(0)
  })

  it('refuses a request without X-Stream-Protocol-Version: 400, in plain text', async () => {
    const exec = await rawExec(query(['true'], 'stdout=true'), [])
    await exec.closed
    expect(exec.response).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(exec.response).toContain('Content-Type: text/plain; charset=utf-8\r\n')
    expect(exec.after().toString()).toBe('unable to upgrade: X-Stream-Protocol-Version is required\n')
  })

  it('refuses versions it does not speak: 403 listing the accepted ones (and the kubelet’s doubled body)', async () => {
    const exec = await rawExec(query(['true'], 'stdout=true'), ['v5.channel.k8s.io'])
    await exec.closed
    expect(exec.response).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/)
    const accepted = exec.response
      .split('\r\n')
      .filter((line) => line.startsWith('X-Accepted-Stream-Protocol-Versions: '))
      .map((line) => line.split(': ')[1])
    expect(accepted).toEqual([...SPDY_EXEC_PROTOCOLS])
    const message =
      'unable to upgrade: unable to negotiate protocol: client supports [v5.channel.k8s.io], server accepts ' +
      '[v4.channel.k8s.io v3.channel.k8s.io v2.channel.k8s.io channel.k8s.io]'
    expect(exec.after().toString()).toBe(`${message}\n${message}\n`)
  })

  it('answers errors found before the upgrade with the JSON Status, as for the WebSocket GET', async () => {
    const exec = await rawExec(`${query(['true'], 'stdout=true')}&container=nope`, ['v4.channel.k8s.io'])
    await exec.closed
    expect(exec.response).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(JSON.parse(exec.after().toString())).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: `container nope is not valid for pod ${sandbox.currentPodName}`,
      reason: 'BadRequest',
      code: 400,
    })
  })
})

describe('a v4 session', () => {
  it('replies to each stream, starts only once all are in, then stdout, stderr, status, FINs', async () => {
    const exec = await rawExec(query(['sh', '-c', 'cat; echo E >&2; exit 3'], 'stdin=true&stdout=true&stderr=true'), [
      'v4.channel.k8s.io',
    ])
    await exec.open(1, 'error')
    await exec.open(3, 'stdin')
    await exec.open(5, 'stdout')
    exec.socket.write(encodeDataFrame(3, Buffer.from('early\n')))
    await vi.waitFor(() => expect(replies(exec.frames())).toEqual([1, 3, 5]))
    // Three of four streams: the command must not have started, so cat has echoed nothing.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(stream(exec.frames(), 5).data).toBe('')
    await exec.open(7, 'stderr')
    await vi.waitFor(() => expect(stream(exec.frames(), 5).data).toBe('early\n'))
    exec.socket.write(encodeDataFrame(3, Buffer.from('late\n'), true)) // stdin, then its FIN (EOF)
    await vi.waitFor(() => expect(stream(exec.frames(), 1).fin).toBe(true))
    const frames = exec.frames()
    expect(replies(frames)).toEqual([1, 3, 5, 7])
    expect(stream(frames, 5)).toEqual({ data: 'early\nlate\n', fin: true })
    expect(stream(frames, 7)).toEqual({ data: 'E\n', fin: true })
    expect(JSON.parse(stream(frames, 1).data)).toEqual({
      metadata: {},
      status: 'Failure',
      message:
        'command terminated with non-zero exit code: error executing command [sh -c cat; echo E >&2; exit 3], exit code 3',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '3' }] },
    })
    // The output streams end before the status: the client has all the output when it learns the exit code.
    const order = frames
      .filter((f) => f.kind === 'data' && f.flags & 1)
      .map((f) => (f.kind === 'data' ? f.streamId : 0))
    expect(order).toEqual([5, 7, 1])
    // The client closes (GOAWAY, then EOF); the server answers with its GOAWAY and closes too.
    exec.socket.write(encodeGoAway(7, 0))
    exec.socket.end()
    await exec.closed
    expect(exec.frames().at(-1)).toMatchObject({ kind: 'control', type: FrameType.GoAway })
    exec.deflater.close()
  })

  it('reports success as {"metadata":{},"status":"Success"}', async () => {
    const exec = await rawExec(query(['echo', 'fine'], 'stdout=true'), ['v4.channel.k8s.io'])
    await exec.open(1, 'error')
    await exec.open(3, 'stdout')
    await vi.waitFor(() => expect(stream(exec.frames(), 1).fin).toBe(true))
    expect(stream(exec.frames(), 3)).toEqual({ data: 'fine\n', fin: true })
    expect(stream(exec.frames(), 1).data).toBe('{"metadata":{},"status":"Success"}')
    exec.deflater.close()
  })

  it('runs a TTY with a resize stream: the size reaches the terminal, stderr is merged', async () => {
    const exec = await rawExec(
      query(['sh', '-c', 'sleep 0.3; stty size; echo to-err >&2'], 'stdin=true&stdout=true&tty=true'),
      ['v4.channel.k8s.io'],
    )
    await exec.open(1, 'error')
    await exec.open(3, 'stdin')
    await exec.open(5, 'stdout')
    await exec.open(7, 'resize')
    exec.socket.write(encodeDataFrame(7, Buffer.from('{"Width":123,"Height":45}\n')))
    await vi.waitFor(() => expect(stream(exec.frames(), 1).fin).toBe(true))
    expect(stream(exec.frames(), 5).data).toBe('45 123\r\nto-err\r\n')
    expect(stream(exec.frames(), 1).data).toBe('{"metadata":{},"status":"Success"}')
    exec.deflater.close()
  })

  it('ignores a stream of an unknown type (replied to, but not counted)', async () => {
    const exec = await rawExec(query(['echo', 'counted'], 'stdout=true'), ['v4.channel.k8s.io'])
    await exec.open(1, 'error')
    await exec.open(3, 'bogus')
    await vi.waitFor(() => expect(replies(exec.frames())).toEqual([1, 3]))
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(stream(exec.frames(), 1).fin).toBe(false)
    await exec.open(5, 'stdout')
    await vi.waitFor(() => expect(stream(exec.frames(), 5)).toEqual({ data: 'counted\n', fin: true }))
    exec.deflater.close()
  })
})

describe('older versions', () => {
  it('v2: the error stream carries the message as text on failure, and nothing on success', async () => {
    const failing = await rawExec(query(['sh', '-c', 'exit 2'], 'stdout=true'), ['v2.channel.k8s.io'])
    await failing.open(1, 'error')
    await failing.open(3, 'stdout')
    await vi.waitFor(() => expect(stream(failing.frames(), 1).fin).toBe(true))
    expect(stream(failing.frames(), 1).data).toBe(
      'command terminated with non-zero exit code: error executing command [sh -c exit 2], exit code 2',
    )
    const passing = await rawExec(query(['true'], 'stdout=true'), ['v2.channel.k8s.io'])
    await passing.open(1, 'error')
    await passing.open(3, 'stdout')
    await vi.waitFor(() => expect(stream(passing.frames(), 1)).toEqual({ data: '', fin: true }))
    failing.deflater.close()
    passing.deflater.close()
  })

  it('v2 has no resize stream: a TTY session starts without one', async () => {
    const exec = await rawExec(query(['echo', 'no-resize'], 'stdin=true&stdout=true&tty=true'), ['v2.channel.k8s.io'])
    await exec.open(1, 'error')
    await exec.open(3, 'stdin')
    await exec.open(5, 'stdout')
    await vi.waitFor(() => expect(stream(exec.frames(), 5)).toEqual({ data: 'no-resize\r\n', fin: true }))
    exec.deflater.close()
  })

  it('channel.k8s.io (v1): the error stream is reset once the streams are in, and stdin half-closed', async () => {
    const exec = await rawExec(query(['sh', '-c', 'cat; exit 1'], 'stdin=true&stdout=true'), ['channel.k8s.io'])
    await exec.open(1, 'error')
    await exec.open(3, 'stdin')
    await exec.open(5, 'stdout')
    await vi.waitFor(() => expect(resets(exec.frames())).toEqual([1]))
    expect(stream(exec.frames(), 3).fin).toBe(true) // the server's half of stdin
    exec.socket.write(encodeDataFrame(3, Buffer.from('v1 input'), true))
    await vi.waitFor(() => expect(stream(exec.frames(), 5)).toEqual({ data: 'v1 input', fin: true }))
    expect(stream(exec.frames(), 1).data).toBe('')
    exec.deflater.close()
  })
})

describe('stream creation timeout', () => {
  it('gives the session up when the client does not open every stream in time, without running anything', async () => {
    let ran = false
    const target: PodStreamTarget = {
      podName: 'demo-0',
      podUid: 'uid',
      namespace: 'default',
      runtime: {
        name: 'demo-0',
        sshPort: undefined,
        exec: () => {
          ran = true
          throw new Error('must not run')
        },
        dial: () => Promise.reject(new Error('no')),
        startSshd: async () => {},
        stopSshd: async () => {},
        destroy: async () => {},
      },
    }
    const server = http.createServer()
    server.on('upgrade', (req, socket, head) => {
      const request = parseExecRequest(new URL(req.url ?? '/', 'http://x').searchParams)
      serveSpdyExec(req, socket, head, request, target, {}, { streamCreationTimeoutMs: 300 })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
      const exec = await rawExec(query(['true'], 'stdout=true&stderr=true'), ['v4.channel.k8s.io'], socket)
      const started = Date.now()
      await exec.open(1, 'error')
      await exec.open(3, 'stdout')
      await exec.closed
      expect(Date.now() - started).toBeGreaterThanOrEqual(250)
      expect(replies(exec.frames())).toEqual([1, 3])
      expect(ran).toBe(false)
      exec.deflater.close()
    } finally {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
