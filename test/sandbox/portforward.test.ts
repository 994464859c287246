/**
 * Fidelity tests for the sandbox's port-forward: the real kubectl 1.32 (tunnel and direct SPDY) and a `ws`
 * client (plain WebSocket v4) against PortForwardServer, behind a tiny HTTPS server local to this file.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import net, { type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import zlib from 'node:zlib'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi, it as vitestIt } from 'vitest'
import WebSocket, { WebSocketServer } from 'ws'
import type { PodRuntime, PodStreamTarget, StreamFaults } from './contracts.js'
import {
  handlePortForwardUpgrade,
  type PortForwardConnection,
  PortForwardServer,
  portForwardServerFor,
  TUNNEL_PROTOCOL,
} from './portforward.js'
import {
  encodeDataFrame,
  encodeGoAway,
  encodeHeaderBlock,
  encodePing,
  encodeSynStream,
  FrameParser,
  SPDY_DICTIONARY,
  type SpdyFrame,
} from './spdy.js'

const KUBECTL = '/usr/lib/google-cloud-sdk/bin/kubectl.1.32'
const TOKEN = 'sandbox-token'
const POD_UID = '6f1c2d4e-0000-4000-8000-000000000001'
const BANNER = 'SSH-2.0-sandbox\r\n'
const DOWNLOAD = randomBytes(4 * 1024 * 1024)

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

// ---------------------------------------------------------------------------------------------------------------
// The pod side: an sshd-like banner+echo service (pod port 22) and a download service (pod port 8080)
// ---------------------------------------------------------------------------------------------------------------

let echoServer: net.Server
let downloadServer: net.Server
let closedPort: number
const podPorts: Record<number, number> = {}
const dials: number[] = []
const podSideSockets = new Set<Socket>()

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
}

/** The runtime the handler dials through; ports without a service are refused, for real, by the kernel. */
const runtime: PodRuntime = {
  name: 'demo-0',
  get sshPort() {
    return podPorts[22]
  },
  exec() {
    throw new Error('exec is not part of these tests')
  },
  dial(port) {
    dials.push(port)
    return new Promise<Socket>((resolve, reject) => {
      const socket = net.connect(podPorts[port] ?? closedPort, '127.0.0.1')
      socket.once('connect', () => {
        socket.off('error', reject)
        resolve(socket)
      })
      socket.once('error', reject)
    })
  },
  async startSshd() {},
  async stopSshd() {},
  async destroy() {},
}

const target: PodStreamTarget = { podName: 'demo-0', podUid: POD_UID, namespace: 'default', runtime }

// ---------------------------------------------------------------------------------------------------------------
// The API server side: just enough HTTPS for kubectl to reach the upgrade
// ---------------------------------------------------------------------------------------------------------------

let tmp: string
let cert: Buffer
let apiServer: https.Server
let apiPort: number
let kubeconfig: string
let portForward: PortForwardServer
let faults: StreamFaults = {}
/** Which entry point the API server uses: the class, or the function form with a `ws` server shared with exec. */
let route: 'server' | 'function' = 'server'
const sharedWss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
/** What each upgrade asked for, recorded before the handler sees (and rewrites) the headers. */
const upgrades: { method: string; upgrade: string; protocols: string | undefined }[] = []

const POD = {
  kind: 'Pod',
  apiVersion: 'v1',
  metadata: { name: 'demo-0', namespace: 'default', uid: POD_UID, resourceVersion: '100' },
  spec: { containers: [{ name: 'main', image: 'sandbox' }] },
  status: { phase: 'Running' },
}

/** Legacy discovery: kubectl maps `pod/demo-0` to a resource through it before anything else. */
const DISCOVERY: Record<string, unknown> = {
  '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] },
  '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
  '/api/v1': {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: 'v1',
    resources: [
      { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
      {
        name: 'pods/portforward',
        singularName: '',
        namespaced: true,
        kind: 'PodPortForwardOptions',
        verbs: ['create', 'get'],
      },
    ],
  },
}

function status(code: number, reason: string, message: string): string {
  return JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code })
}

function startApiServer(): Promise<void> {
  apiServer = https.createServer({ key: readFileSync(join(tmp, 'key.pem')), cert }, (req, res) => {
    res.setHeader('Content-Type', 'application/json')
    const discovered = DISCOVERY[req.url?.split('?')[0] ?? '']
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.writeHead(401).end(status(401, 'Unauthorized', 'Unauthorized'))
    } else if (req.method === 'GET' && discovered) {
      res.writeHead(200).end(JSON.stringify(discovered))
    } else if (req.method === 'GET' && req.url === '/api/v1/namespaces/default/pods/demo-0') {
      res.writeHead(200).end(JSON.stringify(POD))
    } else {
      res.writeHead(404).end(status(404, 'NotFound', `the server could not find the requested resource`))
    }
  })
  apiServer.on('upgrade', (req, socket, head) => {
    upgrades.push({
      method: req.method ?? '',
      upgrade: req.headers.upgrade ?? '',
      protocols: req.headers['sec-websocket-protocol'],
    })
    const path = new URL(req.url ?? '/', 'https://sandbox').pathname
    if (
      req.headers.authorization !== `Bearer ${TOKEN}` ||
      path !== '/api/v1/namespaces/default/pods/demo-0/portforward'
    ) {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    if (route === 'function') handlePortForwardUpgrade(req, socket, head, target, faults, sharedWss)
    else portForward.handleUpgrade(req, socket, head, target, () => faults)
  })
  return new Promise((resolve) =>
    apiServer.listen(0, '127.0.0.1', () => {
      apiPort = (apiServer.address() as AddressInfo).port
      resolve()
    }),
  )
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'akm-portforward-'))
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', join(tmp, 'key.pem'), '-out', join(tmp, 'cert.pem'),
  ], { stdio: 'ignore' }) // biome-ignore format: argv pairs read better on few lines
  cert = readFileSync(join(tmp, 'cert.pem'))

  echoServer = net.createServer((socket) => {
    podSideSockets.add(socket)
    socket.on('close', () => podSideSockets.delete(socket))
    socket.on('error', () => {})
    socket.write(BANNER)
    socket.pipe(socket)
  })
  downloadServer = net.createServer((socket) => {
    podSideSockets.add(socket)
    socket.on('close', () => podSideSockets.delete(socket))
    socket.on('error', () => {})
    socket.end(DOWNLOAD)
  })
  podPorts[22] = await listen(echoServer)
  podPorts[8080] = await listen(downloadServer)
  const probe = net.createServer()
  closedPort = await listen(probe)
  await new Promise((resolve) => probe.close(resolve))

  // A short pairing timeout so that a test can watch it expire; kubectl completes its pairs within milliseconds.
  portForward = new PortForwardServer({ streamCreationTimeoutMs: 1000 })
  await startApiServer()
  kubeconfig = join(tmp, 'kubeconfig')
  writeFileSync(
    kubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: sandbox',
      '  cluster:',
      `    server: https://127.0.0.1:${apiPort}`,
      `    certificate-authority-data: ${cert.toString('base64')}`,
      'users:',
      '- name: sandbox',
      '  user:',
      `    token: ${TOKEN}`,
      'contexts:',
      '- name: sandbox',
      '  context: {cluster: sandbox, user: sandbox, namespace: default}',
      'current-context: sandbox',
      '',
    ].join('\n'),
  )
})

afterAll(async () => {
  portForward?.close()
  portForwardServerFor(sharedWss).close()
  sharedWss.close()
  apiServer?.closeAllConnections()
  for (const socket of podSideSockets) socket.destroy()
  await Promise.all(
    [apiServer, echoServer, downloadServer].map(
      (server) => new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined))),
    ),
  )
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------------------------------------------
// Client-side helpers
// ---------------------------------------------------------------------------------------------------------------

interface KubectlPortForward {
  child: ChildProcess
  /** Local port for each remote port, in the order asked. */
  localPorts: number[]
  output: () => string
  exited: Promise<number | null>
}

const children = new Set<ChildProcess>()
const sockets = new Set<Socket | WebSocket>()

afterEach(async () => {
  faults = {}
  for (const socket of sockets) {
    if (socket instanceof WebSocket) socket.terminate()
    else socket.destroy()
  }
  sockets.clear()
  await Promise.all(
    [...children].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.once('exit', () => resolve())
          child.kill('SIGKILL')
        }),
    ),
  )
  children.clear()
  upgrades.length = 0
  dials.length = 0
  // Every client connection the test opened must be gone from the registry, whoever closed it.
  await vi.waitFor(
    () => expect(portForward.connections.size + portForwardServerFor(sharedWss).connections.size).toBe(0),
    {
      timeout: 5000,
    },
  )
  route = 'server'
})

/** Runs `kubectl port-forward pod/demo-0 :P…` and waits for its "Forwarding from 127.0.0.1:L -> P" lines. */
async function kubectlPortForward(
  remotePorts: number[],
  env: Record<string, string> = {},
): Promise<KubectlPortForward> {
  const child = spawn(
    KUBECTL,
    ['--kubeconfig', kubeconfig, 'port-forward', 'pod/demo-0', ...remotePorts.map((p) => `:${p}`)],
    // A private HOME keeps kubectl's discovery cache out of the user's, and no proxy may sit in between.
    { env: { PATH: process.env.PATH ?? '', HOME: tmp, NO_PROXY: '*', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  children.add(child)
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString()
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const localPorts = await vi.waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`kubectl exited with ${child.exitCode}:\n${output}`)
      const ports = remotePorts.map((remote) => {
        const match = new RegExp(`Forwarding from 127\\.0\\.0\\.1:(\\d+) -> ${remote}\\b`).exec(output)
        if (!match) throw new Error(`kubectl has not started forwarding (yet):\n${output}`)
        return Number(match[1])
      })
      return ports
    },
    { timeout: 15_000, interval: 20 },
  )
  return { child, localPorts, output: () => output, exited }
}

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
    sockets.add(socket)
  })
}

/** Collects a socket's bytes; `take(n)` waits for the next n of them, `rest()` for everything until EOF. */
function reader(socket: Socket) {
  let buffered = Buffer.alloc(0)
  let ended = false
  let wake: () => void = () => {}
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    wake()
  })
  socket.on('close', () => {
    ended = true
    wake()
  })
  const until = async (ready: () => boolean): Promise<void> => {
    while (!ready()) await new Promise<void>((resolve) => (wake = resolve))
  }
  return {
    async take(n: number): Promise<Buffer> {
      await until(() => buffered.length >= n || ended)
      if (buffered.length < n) throw new Error(`connection closed after ${buffered.length} of ${n} bytes`)
      const out = buffered.subarray(0, n)
      buffered = buffered.subarray(n)
      return out
    },
    async rest(): Promise<Buffer> {
      await until(() => ended)
      return buffered
    },
  }
}

// ---------------------------------------------------------------------------------------------------------------
// kubectl, both transports
// ---------------------------------------------------------------------------------------------------------------

const modes = [
  { name: 'SPDY tunnelled in WebSocket (kubectl default)', env: {}, protocol: 'spdy-websocket', method: 'GET' },
  {
    name: 'direct SPDY (KUBECTL_PORT_FORWARD_WEBSOCKETS=false)',
    env: { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' },
    protocol: 'spdy',
    method: 'POST',
  },
] as const

describe.each(modes)('kubectl 1.32 port-forward over $name', ({ env, protocol, method }) => {
  // kubectl falls back from the tunnel to direct SPDY silently, so every test checks which transport carried it.
  const it = (name: string, body: () => Promise<void>) =>
    vitestIt(name, async () => {
      await body()
      expect(upgrades.map((u) => u.method)).toEqual([method])
      if (method === 'GET') expect(upgrades[0]?.protocols).toBe(TUNNEL_PROTOCOL)
      else expect(upgrades[0]?.upgrade).toBe('SPDY/3.1')
    })

  it('carries the banner and echoes bytes both ways', async () => {
    const pf = await kubectlPortForward([22], env)
    const socket = await connect(pf.localPorts[0]!)
    const input = reader(socket)
    expect((await input.take(BANNER.length)).toString()).toBe(BANNER)
    socket.write('hello\n')
    expect((await input.take(6)).toString()).toBe('hello\n')
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    socket.write(binary)
    expect((await input.take(256)).equals(binary)).toBe(true)
    expect([...portForward.connections].map((c) => c.protocol)).toEqual([protocol])
    expect(dials).toEqual([22])
  })

  it('echoes a 4 MiB random payload byte-exact', async () => {
    const pf = await kubectlPortForward([22], env)
    const socket = await connect(pf.localPorts[0]!)
    const input = reader(socket)
    await input.take(BANNER.length)
    const payload = randomBytes(4 * 1024 * 1024)
    socket.write(payload)
    expect(sha256(await input.take(payload.length))).toBe(sha256(payload))
  })

  it('delivers a 4 MiB download and then EOF when the pod closes the connection', async () => {
    const pf = await kubectlPortForward([8080], env)
    const socket = await connect(pf.localPorts[0]!)
    // EOF only reaches the local client once the error stream is FINned too (kubectl waits for it).
    const received = await reader(socket).rest()
    expect(received.length).toBe(DOWNLOAD.length)
    expect(sha256(received)).toBe(sha256(DOWNLOAD))
    // The session survives the end of one forwarded connection: a second one works.
    const again = await reader(await connect(pf.localPorts[0]!)).rest()
    expect(sha256(again)).toBe(sha256(DOWNLOAD))
    expect(pf.child.exitCode).toBe(null)
  })

  it('passes the local client’s half-close on to the pod, and the pod’s close back', async () => {
    const pf = await kubectlPortForward([22], env)
    const socket = await connect(pf.localPorts[0]!)
    const input = reader(socket)
    await input.take(BANNER.length)
    // The echo server only closes once it sees EOF, so EOF here proves the FIN went all the way to the pod
    // and that the pod's close came all the way back (data FIN, then error FIN).
    socket.end('last words\n')
    expect((await input.rest()).toString()).toBe('last words\n')
  })

  it('serves several concurrent connections over one session', async () => {
    const pf = await kubectlPortForward([22], env)
    const payloads = Array.from({ length: 6 }, () => randomBytes(512 * 1024))
    const results = await Promise.all(
      payloads.map(async (payload) => {
        const socket = await connect(pf.localPorts[0]!)
        const input = reader(socket)
        await input.take(BANNER.length)
        socket.write(payload)
        return input.take(payload.length)
      }),
    )
    results.forEach((result, i) => {
      expect(sha256(result)).toBe(sha256(payloads[i]!))
    })
    expect(portForward.connections.size).toBe(1)
    expect(dials).toEqual([22, 22, 22, 22, 22, 22])
  })

  it('forwards two remote ports at once', async () => {
    const pf = await kubectlPortForward([22, 8080], env)
    const banner = await reader(await connect(pf.localPorts[0]!)).take(BANNER.length)
    expect(banner.toString()).toBe(BANNER)
    const download = await reader(await connect(pf.localPorts[1]!)).rest()
    expect(sha256(download)).toBe(sha256(DOWNLOAD))
  })

  it('reports a refused pod port the way the kubelet words it, and kubectl gives up', async () => {
    const pf = await kubectlPortForward([2222], env)
    const socket = await connect(pf.localPorts[0]!)
    const received = await reader(socket).rest()
    expect(received.length).toBe(0)
    expect(await pf.exited).toBe(1)
    const local = pf.localPorts[0]
    expect(pf.output()).toContain(
      `an error occurred forwarding ${local} -> 2222: error forwarding port 2222 to pod demo-0, uid ${POD_UID}: connect ECONNREFUSED 127.0.0.1:${closedPort}`,
    )
    expect(pf.output()).toContain('error: lost connection to pod')
  })

  it('loses the connection when the sandbox drops the pod (destroyConnections)', async () => {
    const pf = await kubectlPortForward([22], env)
    const socket = await connect(pf.localPorts[0]!)
    const input = reader(socket)
    await input.take(BANNER.length)
    const dropped = portForward.destroyConnections((c: PortForwardConnection) => c.target.podUid === POD_UID)
    expect(dropped).toBe(1)
    await input.rest()
    expect(await pf.exited).toBe(1)
    expect(pf.output()).toContain('lost connection to pod')
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Direct SPDY at the byte level
// ---------------------------------------------------------------------------------------------------------------

describe('direct SPDY upgrade, byte level', () => {
  /** The client's header compression, as spdystream does it: real zlib, one context, sync flush per block. */
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

  async function rawUpgrade(
    extraHeaders: string,
  ): Promise<{ socket: tls.TLSSocket; response: string; frames: () => SpdyFrame[]; rawAfter: () => Buffer }> {
    const socket = tls.connect({ host: '127.0.0.1', port: apiPort, ca: cert })
    sockets.add(socket)
    socket.write(
      'POST /api/v1/namespaces/default/pods/demo-0/portforward HTTP/1.1\r\n' +
        `Host: 127.0.0.1:${apiPort}\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 0\r\n` +
        `Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n${extraHeaders}\r\n`,
    )
    let raw = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      raw = Buffer.concat([raw, chunk])
    })
    const end = await vi.waitFor(() => {
      const at = raw.indexOf('\r\n\r\n')
      if (at < 0) throw new Error('no response yet')
      return at + 4
    })
    const response = raw.subarray(0, end).toString()
    const rawAfter = () => raw.subarray(end)
    return { socket, response, rawAfter, frames: () => new FrameParser().push(rawAfter()) }
  }

  it('answers 101 and then stays silent until the client speaks', async () => {
    const { response, rawAfter } = await rawUpgrade('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
    expect(response).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
        'X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n',
    )
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(rawAfter().length).toBe(0)
  })

  it('replies to a stream pair with the exact SYN_REPLY bytes, then forwards, then FINs both streams', async () => {
    const { socket, rawAfter, frames } = await rawUpgrade('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
    const deflater = headerDeflater()
    socket.write(encodeSynStream(1, await deflater.compress({ streamtype: 'error', port: '8080', requestid: '0' })))
    await vi.waitFor(() => expect(rawAfter().length).toBeGreaterThan(0))
    expect(rawAfter().toString('hex')).toBe('80030002000000180000000178bbe3c6a7c2000400fbff00000000000000ffff')
    socket.write(encodeDataFrame(1, Buffer.alloc(0), true)) // kubectl half-closes the error stream at once
    socket.write(encodeSynStream(3, await deflater.compress({ streamtype: 'data', port: '8080', requestid: '0' })))
    // The download service sends 4 MiB and closes: data on stream 3, then FIN on 3 and FIN on 1.
    await vi.waitFor(() => {
      const tail = frames().at(-1)
      expect(tail?.kind === 'data' && tail.streamId === 1 && tail.flags === 1).toBe(true)
    })
    const all = frames()
    expect(all[1]?.kind === 'control' && all[1].payload.toString('hex')).toBe('00000003000400fbff00000000000000ffff')
    const data = all.filter((f) => f.kind === 'data' && f.streamId === 3)
    const payload = Buffer.concat(data.map((f) => (f.kind === 'data' ? f.data : Buffer.alloc(0))))
    expect(sha256(payload)).toBe(sha256(DOWNLOAD))
    const fins = all.filter((f) => f.kind === 'data' && f.flags === 1).map((f) => (f.kind === 'data' ? f.streamId : 0))
    expect(fins).toEqual([3, 1])
    socket.write(encodeGoAway(3, 0))
    deflater.close()
  })

  it('pairs streams without a requestid by stream id (error n, data n+2) and writes the kubelet error text', async () => {
    const { socket, frames } = await rawUpgrade('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
    const deflater = headerDeflater()
    socket.write(encodeSynStream(5, await deflater.compress({ streamtype: 'error', port: '2222' })))
    socket.write(encodeSynStream(7, await deflater.compress({ streamtype: 'data', port: '2222' })))
    await vi.waitFor(() => expect(frames().filter((f) => f.kind === 'data' && f.flags === 1)).toHaveLength(2))
    const errorText = frames()
      .filter((f) => f.kind === 'data' && f.streamId === 5)
      .map((f) => (f.kind === 'data' ? f.data.toString() : ''))
      .join('')
    expect(errorText).toBe(
      `error forwarding port 2222 to pod demo-0, uid ${POD_UID}: connect ECONNREFUSED 127.0.0.1:${closedPort}`,
    )
    expect(dials).toEqual([2222])
    deflater.close()
  })

  it('echoes the client’s PING frames (kubectl pings every 5 s here, 10 s in the tunnel)', async () => {
    const { socket, rawAfter } = await rawUpgrade('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
    socket.write(encodePing(1))
    await vi.waitFor(() => expect(rawAfter().toString('hex')).toBe('8003000600000004' + '00000001'))
  })

  it('gives up on a pair whose second stream never comes, with the kubelet’s message on the error stream', async () => {
    const { socket, frames } = await rawUpgrade('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
    const deflater = headerDeflater()
    const started = Date.now()
    socket.write(encodeSynStream(1, await deflater.compress({ streamtype: 'error', port: '22', requestid: '9' })))
    await vi.waitFor(() => expect(frames().at(-1)).toMatchObject({ kind: 'data', streamId: 1, flags: 1 }), {
      timeout: 3000,
    })
    expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    const text = frames().find((f) => f.kind === 'data' && f.data.length > 0)
    expect(text?.kind === 'data' && text.data.toString()).toMatch(
      /^\(conn=\d+, request=9\) timed out waiting for streams$/,
    )
    expect(dials).toEqual([])
    deflater.close()
  })

  it('resets a stream whose port or type is invalid, without a reply', async () => {
    const { socket, frames } = await rawUpgrade('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
    const deflater = headerDeflater()
    socket.write(encodeSynStream(1, await deflater.compress({ streamtype: 'data', port: '0' })))
    socket.write(encodeSynStream(3, await deflater.compress({ streamtype: 'data', port: '70000' })))
    socket.write(encodeSynStream(5, await deflater.compress({ streamtype: 'bogus', port: '22' })))
    await vi.waitFor(() => expect(frames()).toHaveLength(3))
    expect(frames().map((f) => (f.kind === 'control' ? `${f.type}:${f.payload.toString('hex')}` : 'data'))).toEqual([
      '3:0000000100000005',
      '3:0000000300000005',
      '3:0000000500000005',
    ])
    deflater.close()
  })

  it('reads X-Stream-Protocol-Version as httpstream.Handshake does: lines and comma-separated lists', async () => {
    const { response } = await rawUpgrade('X-Stream-Protocol-Version: v4.channel.k8s.io, portforward.k8s.io\r\n')
    expect(response).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/)
    expect(response).toContain('X-Stream-Protocol-Version: portforward.k8s.io\r\n')
  })

  it('refuses a protocol version it does not speak with 403, as httpstream.Handshake does', async () => {
    const { response } = await rawUpgrade('X-Stream-Protocol-Version: v4.channel.k8s.io\r\n')
    expect(response).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/)
    expect(response).toContain('X-Accepted-Stream-Protocol-Versions: portforward.k8s.io')
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Plain WebSocket (v4.channel.k8s.io), as @kubernetes/client-node and akm-access use it
// ---------------------------------------------------------------------------------------------------------------

interface WsSession {
  ws: WebSocket
  messages: { data: Buffer; binary: boolean }[]
  closed: Promise<{ code: number }>
}

async function openWs(query: string, protocols: string[]): Promise<WsSession> {
  const ws = new WebSocket(
    `wss://127.0.0.1:${apiPort}/api/v1/namespaces/default/pods/demo-0/portforward${query}`,
    protocols,
    {
      ca: cert,
      headers: { Authorization: `Bearer ${TOKEN}` },
    },
  )
  sockets.add(ws)
  const messages: WsSession['messages'] = []
  ws.on('message', (data, binary) => messages.push({ data: data as Buffer, binary }))
  const closed = new Promise<{ code: number }>((resolve) => ws.once('close', (code) => resolve({ code })))
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  return { ws, messages, closed }
}

/** The payload received so far on one channel (binary framing), port prefix included. */
function channel(session: WsSession, ch: number): Buffer {
  return Buffer.concat(session.messages.filter((m) => m.data[0] === ch).map((m) => m.data.subarray(1)))
}

/** Sends an upgrade request and returns the non-101 answer. */
function refusedUpgrade(query: string, protocol = 'v4.channel.k8s.io'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1',
      port: apiPort,
      ca: cert,
      path: `/api/v1/namespaces/default/pods/demo-0/portforward${query}`,
      headers: {
        Authorization: `Bearer ${TOKEN}`,
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Protocol': protocol,
      },
    })
    req.on('upgrade', () => reject(new Error('unexpectedly upgraded')))
    req.on('response', (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString()
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('plain WebSocket port-forward (v4.channel.k8s.io)', () => {
  it('negotiates v4 from client-node’s offer, sends the port prefix on both channels, then the data', async () => {
    const session = await openWs('?ports=22', [
      'v5.channel.k8s.io',
      'v4.channel.k8s.io',
      'v3.channel.k8s.io',
      'v2.channel.k8s.io',
      'channel.k8s.io',
    ])
    expect(session.ws.protocol).toBe('v4.channel.k8s.io')
    await vi.waitFor(() => expect(channel(session, 0).length).toBeGreaterThanOrEqual(2 + BANNER.length))
    expect(session.messages[0]).toEqual({ data: Buffer.from([0, 22, 0]), binary: true })
    expect(session.messages[1]).toEqual({ data: Buffer.from([1, 22, 0]), binary: true })
    expect(channel(session, 0).subarray(2).toString()).toBe(BANNER)
    session.ws.send(Buffer.concat([Buffer.of(0), Buffer.from('ping-cn\n')]))
    await vi.waitFor(() => expect(channel(session, 0).subarray(2).toString()).toBe(`${BANNER}ping-cn\n`))
    expect(channel(session, 1)).toEqual(Buffer.from([22, 0]))
    expect([...portForward.connections].map((c) => c.protocol)).toEqual(['websocket'])
  })

  it('closes with 1000 once the pod closes the connection, after a 4 MiB download', async () => {
    const session = await openWs('?ports=8080', ['v4.channel.k8s.io'])
    const { code } = await session.closed
    expect(code).toBe(1000)
    expect(channel(session, 0).subarray(0, 2)).toEqual(Buffer.from([0x90, 0x1f])) // 8080 little-endian
    expect(sha256(channel(session, 0).subarray(2))).toBe(sha256(DOWNLOAD))
  })

  it('writes the kubelet error text on the error channel and closes with 1000 when the dial fails', async () => {
    const session = await openWs('?ports=2222', ['v4.channel.k8s.io'])
    const { code } = await session.closed
    expect(code).toBe(1000)
    expect(channel(session, 1).subarray(2).toString()).toBe(
      `error forwarding port 2222 to pod demo-0, uid ${POD_UID}: connect ECONNREFUSED 127.0.0.1:${closedPort}`,
    )
    expect(channel(session, 0)).toEqual(Buffer.from([0xae, 0x08]))
  })

  it.each(['?ports=22,8080', '?ports=22&ports=8080'])(
    'forwards several ports on channels 2k/2k+1 (%s)',
    async (query) => {
      const session = await openWs(query, ['v4.channel.k8s.io'])
      await vi.waitFor(() => expect(channel(session, 2).length).toBe(2 + DOWNLOAD.length))
      expect(
        channel(session, 0)
          .subarray(0, 2 + BANNER.length)
          .toString('latin1'),
      ).toBe(`\x16\x00${BANNER}`)
      expect(channel(session, 1)).toEqual(Buffer.from([22, 0]))
      expect(channel(session, 3)).toEqual(Buffer.from([0x90, 0x1f]))
      expect(sha256(channel(session, 2).subarray(2))).toBe(sha256(DOWNLOAD))
      // Port 22 is still open, so the WebSocket is too: it closes only when every port is done.
      expect(session.ws.readyState).toBe(WebSocket.OPEN)
      expect(dials.sort()).toEqual([22, 8080])
    },
  )

  it('speaks v4.base64.channel.k8s.io with text frames', async () => {
    const session = await openWs('?ports=22', ['v4.base64.channel.k8s.io'])
    expect(session.ws.protocol).toBe('v4.base64.channel.k8s.io')
    await vi.waitFor(() => expect(session.messages.length).toBeGreaterThanOrEqual(3))
    expect(session.messages.slice(0, 2).map((m) => [m.data.toString(), m.binary])).toEqual([
      ['0FgA=', false],
      ['1FgA=', false],
    ])
    session.ws.send(`0${Buffer.from('b64!').toString('base64')}`)
    const decoded = () =>
      session.messages
        .slice(2)
        .map((m) => Buffer.from(m.data.toString().slice(1), 'base64').toString())
        .join('')
    await vi.waitFor(() => expect(decoded()).toBe(`${BANNER}b64!`))
  })

  it('accepts a client that offers no subprotocol (binary framing)', async () => {
    const session = await openWs('?ports=22', [])
    expect(session.ws.protocol).toBe('')
    await vi.waitFor(() => expect(channel(session, 0).subarray(2).toString()).toBe(BANNER))
  })

  it.each([
    ['', 'query parameter "port" is required'],
    ['?ports=0', 'port "0" must be > 0'],
    ['?ports=70000', 'cannot convert to []int32: strconv.ParseUint: parsing "70000": value out of range'],
    ['?ports=22,ssh', 'cannot convert to []int32: strconv.ParseUint: parsing "ssh": invalid syntax'],
  ])('refuses ports %j with a 400 Status', async (query, message) => {
    const { status, body } = await refusedUpgrade(query)
    expect(status).toBe(400)
    expect(JSON.parse(body)).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      reason: 'BadRequest',
      code: 400,
    })
    expect(dials).toEqual([])
  })

  it('refuses a client that offers only protocols the kubelet does not speak (403)', async () => {
    expect((await refusedUpgrade('?ports=22', 'v5.channel.k8s.io')).status).toBe(403)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------------------------

describe('stream faults', () => {
  it('dropAfterBytes: the client gets exactly that many payload bytes, then the connection drops', async () => {
    faults = { dropAfterBytes: 100_000 }
    const session = await openWs('?ports=8080', ['v4.channel.k8s.io'])
    const { code } = await session.closed
    expect(code).toBe(1006) // no close frame: a drop, not a goodbye
    expect(channel(session, 0).subarray(2).equals(DOWNLOAD.subarray(0, 100_000))).toBe(true)
  })

  it('dropAfterBytes also cuts kubectl’s SPDY session', async () => {
    faults = { dropAfterBytes: 10 }
    const pf = await kubectlPortForward([22])
    const socket = await connect(pf.localPorts[0]!)
    const received = await reader(socket).rest()
    // kubectl exits as soon as the session is lost, racing its own copy to the local socket, so the 10 bytes
    // that went out may or may not reach the local client (the WebSocket test above counts them exactly).
    expect(BANNER.slice(0, 10).startsWith(received.toString())).toBe(true)
    expect(await pf.exited).toBe(1)
    expect(pf.output()).toContain('lost connection to pod')
  })

  it('delayMs: every chunk is late by the delay, in both directions', async () => {
    const session = await openWs('?ports=22', ['v4.channel.k8s.io'])
    await vi.waitFor(() => expect(channel(session, 0).subarray(2).toString()).toBe(BANNER))
    faults = { delayMs: 300 } // changed while the connection is open
    const started = Date.now()
    session.ws.send(Buffer.concat([Buffer.of(0), Buffer.from('late\n')]))
    await vi.waitFor(() => expect(channel(session, 0).subarray(2).toString()).toBe(`${BANNER}late\n`), {
      timeout: 3000,
    })
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(590)
    expect(elapsed).toBeLessThan(2000)
  })

  it('idleTimeoutMs: an idle connection is cut, a busy one is not', async () => {
    faults = { idleTimeoutMs: 600 }
    const session = await openWs('?ports=22', ['v4.channel.k8s.io'])
    // Keep it busy for longer than the timeout...
    let idleSince = Date.now()
    for (let i = 0; i < 6; i++) {
      idleSince = Date.now()
      session.ws.send(Buffer.concat([Buffer.of(0), Buffer.from('.')]))
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(session.ws.readyState).toBe(WebSocket.OPEN)
    // ...then let it go idle (since the last message and its echo).
    const { code } = await session.closed
    expect(code).toBe(1006)
    expect(Date.now() - idleSince).toBeGreaterThanOrEqual(500)
    expect(Date.now() - idleSince).toBeLessThan(2000)
  })
})

describe('function form with a ws server shared with exec (as api-server.ts wires it)', () => {
  it('still answers kubectl with the exact tunnel subprotocol (no silent fallback)', async () => {
    route = 'function'
    // The shared server has no handleProtocols of its own: left alone, `ws` would refuse `SPDY/3.1+…` outright.
    const pf = await kubectlPortForward([22])
    const input = reader(await connect(pf.localPorts[0]!))
    expect((await input.take(BANNER.length)).toString()).toBe(BANNER)
    expect(upgrades.map((u) => u.method)).toEqual(['GET'])
    expect([...portForwardServerFor(sharedWss).connections].map((c) => c.protocol)).toEqual(['spdy-websocket'])
    expect(portForward.connections.size).toBe(0)
  })

  it('negotiates v4 for a plain WebSocket client', async () => {
    route = 'function'
    const session = await openWs('?ports=22', ['v5.channel.k8s.io', 'v4.channel.k8s.io'])
    expect(session.ws.protocol).toBe('v4.channel.k8s.io')
    await vi.waitFor(() => expect(channel(session, 0).subarray(2).toString()).toBe(BANNER))
  })
})
