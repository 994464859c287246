import type http from 'node:http'
import type { Duplex } from 'node:stream'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { AccessError, ExitCode } from '../../../src/errors.js'
import { KubeClient, type KubeClientOptions } from '../../../src/kube/client.js'
import type { KubeConnection } from '../../../src/kube/types.js'
import { openWebSocket } from '../../../src/kube/websocket.js'
import { forgetSecrets } from '../../../src/redact.js'
import {
  connectionFor,
  makePki,
  type Pki,
  removeTempDirs,
  sendJson,
  startApiServer,
  startConnectProxy,
  statusBody,
  type TestServer,
} from './fixtures.js'

const TOKEN = 'ws-bearer-token-0123456789'
const SUPPORTED = ['v5.channel.k8s.io', 'v4.channel.k8s.io']

let pki: Pki
let api: TestServer
const upgrades: { url: string; headers: http.IncomingHttpHeaders }[] = []
const hanging: Duplex[] = []

function rawStatus(socket: Duplex, code: number, text: string, body: unknown): void {
  const json = JSON.stringify(body)
  socket.end(
    `HTTP/1.1 ${code} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
  )
}

beforeAll(async () => {
  pki = makePki()
  api = await startApiServer({ key: pki.serverKey, cert: pki.serverCert }, (_req, res) =>
    sendJson(res, 200, { ok: true }),
  )
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (offered) => {
      if (upgrades.at(-1)?.url.includes('noproto')) return false
      return [...offered].find((protocol) => SUPPORTED.includes(protocol)) ?? false
    },
  })
  wss.on('connection', (ws) => {
    ws.on('message', (data) => ws.send(data))
  })
  api.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers })
    const url = new URL(req.url ?? '/', 'https://x')
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      return rawStatus(socket, 401, 'Unauthorized', statusBody(401, 'Unauthorized', 'Unauthorized'))
    }
    if (url.pathname.endsWith('/forbidden-pod/exec')) {
      return rawStatus(
        socket,
        403,
        'Forbidden',
        statusBody(
          403,
          'Forbidden',
          'pods "forbidden-pod" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the namespace "akamas"',
          { name: 'forbidden-pod', kind: 'pods' },
        ),
      )
    }
    if (url.searchParams.get('container') === 'nope') {
      return rawStatus(
        socket,
        400,
        'Bad Request',
        statusBody(400, 'BadRequest', 'container nope is not valid for pod demo-0'),
      )
    }
    if (url.pathname.endsWith('/hang')) {
      hanging.push(socket)
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
})

afterAll(async () => {
  for (const socket of hanging) socket.destroy()
  await api.close()
})

const clients: KubeClient[] = []
function client(connection: KubeConnection, options: KubeClientOptions = {}): KubeClient {
  const created = new KubeClient(connection, { env: {}, requestTimeoutMs: 5000, ...options })
  clients.push(created)
  return created
}
const trusted = (token = TOKEN) => connectionFor({ server: api.url, certificateAuthorityData: pki.caCert }, { token })

beforeEach(() => {
  forgetSecrets()
  upgrades.length = 0
  api.handshakes = 0
  api.requests.length = 0
})
afterEach(() => {
  for (const created of clients.splice(0)) created.close()
})

async function failure(promise: Promise<unknown>): Promise<AccessError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(AccessError)
  return error as AccessError
}

const EXEC = '/api/v1/namespaces/akamas/pods/demo-0/exec'
const execQuery = {
  command: ['sh', '-c', 'echo hi; exit 3'],
  container: 'main',
  stdin: true,
  stdout: true,
  tty: undefined,
}

describe('openWebSocket', () => {
  it('opens with the same credentials, negotiates a protocol, and carries data', async () => {
    const kube = client(trusted())
    const { ws, protocol } = await openWebSocket(kube, EXEC, execQuery, SUPPORTED)
    expect(protocol).toBe('v5.channel.k8s.io')
    const [upgrade] = upgrades
    expect(upgrade?.url).toBe(
      `${EXEC}?command=sh&command=-c&command=echo+hi%3B+exit+3&container=main&stdin=true&stdout=true`,
    )
    expect(upgrade?.headers.authorization).toBe(`Bearer ${TOKEN}`)
    expect(upgrade?.headers['sec-websocket-protocol']).toBe('v5.channel.k8s.io,v4.channel.k8s.io')
    expect(upgrade?.headers['sec-websocket-extensions']).toBeUndefined()
    const echoed = new Promise<Buffer>((resolve) => ws.once('message', (data) => resolve(data as Buffer)))
    ws.send(Buffer.from([0, 104, 105]))
    expect([...(await echoed)]).toEqual([0, 104, 105])
    ws.close()
  })

  it('offers protocols in the caller order', async () => {
    const { protocol, ws } = await openWebSocket(client(trusted()), EXEC, execQuery, [
      'v4.channel.k8s.io',
      'v5.channel.k8s.io',
    ])
    expect(protocol).toBe('v4.channel.k8s.io')
    ws.close()
  })

  it('reuses the connection of an earlier REST request (one TLS handshake)', async () => {
    const kube = client(trusted())
    await kube.request('GET', '/version')
    const { ws } = await openWebSocket(kube, EXEC, execQuery, SUPPORTED)
    expect(api.handshakes).toBe(1)
    ws.close()
  })

  it('maps a 403 Status on the upgrade like REST', async () => {
    const error = await failure(
      openWebSocket(client(trusted()), '/api/v1/namespaces/akamas/pods/forbidden-pod/exec', execQuery, SUPPORTED),
    )
    expect(error.exitCode).toBe(ExitCode.forbidden)
    expect(error.message).toBe('you may not create pods/exec in namespace akamas')
    expect(error.hint).toContain('kubectl auth can-i create pods --subresource=exec -n akamas')
  })

  it('maps a 400 (invalid container) to the server message, as a bad --container', async () => {
    const error = await failure(openWebSocket(client(trusted()), EXEC, { ...execQuery, container: 'nope' }, SUPPORTED))
    expect(error.message).toBe(
      'the API server refused to open the exec connection to pod demo-0 (400): container nope is not valid for pod demo-0',
    )
    expect(error.exitCode).toBe(ExitCode.usage)
    expect(error.hint).toContain('--container')
  })

  it('maps a 401', async () => {
    const error = await failure(openWebSocket(client(trusted('wrong-token-value')), EXEC, execQuery, SUPPORTED))
    expect(error.exitCode).toBe(ExitCode.unauthorized)
    expect(error.message).toBe(
      'the API server rejected the credentials of user "alice" (context "test") (401 Unauthorized)',
    )
  })

  it('fails clearly when the server picks none of the offered protocols', async () => {
    const error = await failure(openWebSocket(client(trusted()), `${EXEC}/noproto`, execQuery, SUPPORTED))
    expect(error.message).toBe(
      `the API server did not accept any of the stream protocols offered for ${EXEC}/noproto (v5.channel.k8s.io, v4.channel.k8s.io)`,
    )
  })

  it('gives up on the handshake after the request timeout', async () => {
    const started = performance.now()
    const error = await failure(
      openWebSocket(client(trusted(), { requestTimeoutMs: 300 }), `${EXEC}/hang`, execQuery, SUPPORTED),
    )
    expect(error.exitCode).toBe(ExitCode.unreachable)
    expect(error.message).toBe(`the API server at 127.0.0.1:${api.port} did not answer within 300ms (no proxy)`)
    expect(performance.now() - started).toBeLessThan(2000)
  })

  it('goes through the proxy like REST', async () => {
    const proxy = await startConnectProxy()
    try {
      const kube = client(
        connectionFor({ server: api.url, certificateAuthorityData: pki.caCert, proxyUrl: proxy.url }, { token: TOKEN }),
      )
      const { ws, protocol } = await openWebSocket(kube, EXEC, execQuery, SUPPORTED)
      expect(protocol).toBe('v5.channel.k8s.io')
      expect(proxy.connects).toEqual([`127.0.0.1:${api.port}`])
      ws.close()
    } finally {
      await proxy.close()
    }
  })

  it('reports a network failure like REST', async () => {
    const kube = client(
      connectionFor({ server: 'https://127.0.0.1:1', certificateAuthorityData: pki.caCert }, { token: TOKEN }),
    )
    const error = await failure(openWebSocket(kube, EXEC, execQuery, SUPPORTED))
    expect(error.message).toBe('cannot connect to the API server at 127.0.0.1:1 (no proxy): connection refused')
  })
})

afterAll(() => {
  removeTempDirs()
})
