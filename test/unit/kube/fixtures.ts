/**
 * Real-network fixtures for the kube transport tests: a throwaway PKI made with the openssl CLI, an HTTPS "API
 * server" that records what it receives and counts TLS handshakes, and a small HTTP CONNECT proxy that records the
 * tunnels it opens (and resolves the fake host kube.test to 127.0.0.1, which proves a request went through it).
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { TLSSocket } from 'node:tls'
import { stringify } from 'yaml'
import type { ClusterConfig, KubeConnection, UserConfig } from '../../../src/kube/types.js'

export interface Pki {
  readonly dir: string
  readonly caCert: string
  readonly caKey: string
  /** Signed by the CA, SANs IP:127.0.0.1, DNS:localhost, DNS:kube.test. */
  readonly serverCert: string
  readonly serverKey: string
  /** Signed by the CA, SAN DNS:api.internal only. */
  readonly namedCert: string
  readonly namedKey: string
  /** Self-signed, SAN IP:127.0.0.1. */
  readonly selfSignedCert: string
  readonly selfSignedKey: string
  /** Client certificate CN=alice, O=devs, signed by the CA. */
  readonly clientCert: string
  readonly clientKey: string
  /** Another CA, which signed nothing we serve. */
  readonly otherCaCert: string
  readonly path: (name: string) => string
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

export function makePki(): Pki {
  const dir = tempDir('akm-kube-pki-')
  openssl(dir, 'req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=test-ca')
  openssl(
    dir,
    'req',
    '-x509',
    ...EC,
    '-keyout',
    'other-ca.key',
    '-out',
    'other-ca.crt',
    '-days',
    '30',
    '-subj',
    '/CN=other-ca',
  )
  const sign = (name: string, subject: string, ext: string) => {
    writeFileSync(path.join(dir, `${name}.ext`), `${ext}\n`)
    openssl(dir, 'req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject)
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '30',
      '-extfile',
      `${name}.ext`,
    )
  }
  sign('server', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kube.test')
  sign('named', '/CN=api.internal', 'subjectAltName=DNS:api.internal')
  sign('client', '/CN=alice/O=devs', 'extendedKeyUsage=clientAuth')
  openssl(
    dir,
    'req',
    '-x509',
    ...EC,
    '-keyout',
    'self.key',
    '-out',
    'self.crt',
    '-days',
    '30',
    '-subj',
    '/CN=self',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
  )
  const read = (name: string) => readFileSync(path.join(dir, name), 'utf8')
  return {
    dir,
    caCert: read('ca.crt'),
    caKey: read('ca.key'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    namedCert: read('named.crt'),
    namedKey: read('named.key'),
    selfSignedCert: read('self.crt'),
    selfSignedKey: read('self.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    otherCaCert: read('other-ca.crt'),
    path: (name) => path.join(dir, name),
  }
}

export interface RecordedRequest {
  readonly method: string
  readonly url: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  readonly clientCN: string | undefined
  readonly servername: string | undefined
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => unknown

export interface TestServer {
  readonly port: number
  readonly url: string
  readonly requests: RecordedRequest[]
  /** TLS handshakes completed ('secureConnection' events). */
  handshakes: number
  /** Of those, how many resumed an earlier TLS session. */
  resumed: number
  readonly server: https.Server | http.Server
  close(): Promise<void>
}

export async function startApiServer(
  tlsOptions: https.ServerOptions | undefined,
  handler: Handler,
  host = '127.0.0.1',
): Promise<TestServer> {
  const requests: RecordedRequest[] = []
  const listener = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const socket = req.socket as TLSSocket
      const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined
      requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        clientCN: peer && socket.authorized ? (peer.subject?.CN as string | undefined) : undefined,
        servername: typeof socket.servername === 'string' ? socket.servername : undefined,
      })
      void Promise.resolve(handler(req, res, body)).catch((error: unknown) => {
        res.statusCode = 599
        res.end(String(error))
      })
    })
  }
  const server = tlsOptions ? https.createServer(tlsOptions, listener) : http.createServer(listener)
  const state = { handshakes: 0, resumed: 0 }
  server.on('secureConnection', (socket: TLSSocket) => {
    state.handshakes++
    if (socket.isSessionReused()) state.resumed++
  })
  const sockets = new Set<net.Socket>()
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  const port = (server.address() as net.AddressInfo).port
  const result: TestServer = {
    port,
    url: `${tlsOptions ? 'https' : 'http'}://${host}:${port}`,
    requests,
    get handshakes() {
      return state.handshakes
    },
    set handshakes(value: number) {
      state.handshakes = value
    },
    get resumed() {
      return state.resumed
    },
    set resumed(value: number) {
      state.resumed = value
    },
    server,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
  return result
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

export function statusBody(code: number, reason: string, message: string, details?: Record<string, unknown>) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  }
}

export interface TestProxy {
  readonly port: number
  readonly url: string
  /** `host:port` of every CONNECT received. */
  readonly connects: string[]
  /** The Proxy-Authorization header of each CONNECT. */
  readonly authorizations: (string | undefined)[]
  close(): Promise<void>
}

/** A CONNECT-only proxy. kube.test resolves to 127.0.0.1 here (and nowhere else). */
export async function startConnectProxy(
  options: { requireAuth?: string; refuseWith?: number } = {},
): Promise<TestProxy> {
  const connects: string[] = []
  const authorizations: (string | undefined)[] = []
  const sockets = new Set<net.Socket>()
  const server = http.createServer((_req, res) => {
    res.writeHead(405)
    res.end()
  })
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    connects.push(req.url ?? '')
    authorizations.push(req.headers['proxy-authorization'])
    if (options.requireAuth && req.headers['proxy-authorization'] !== options.requireAuth) {
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n\r\n')
      return
    }
    if (options.refuseWith) {
      client.end(`HTTP/1.1 ${options.refuseWith} Refused By Test\r\n\r\n`)
      return
    }
    const match = /^(.*):(\d+)$/.exec(req.url ?? '')
    const host = match?.[1] === 'kube.test' ? '127.0.0.1' : (match?.[1] ?? '').replace(/^\[|\]$/g, '')
    const upstream = net.connect(Number(match?.[2]), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    sockets.add(upstream)
    upstream.on('close', () => sockets.delete(upstream))
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'))
    client.on('error', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connects,
    authorizations,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

const tempDirs: string[] = []

/** A fresh temporary directory, removed by `removeTempDirs()`. */
export function tempDir(prefix = 'akm-kube-'): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

/** For afterAll: removes every directory `tempDir` made in this test file. */
export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/** Writes a kubeconfig as YAML (or JSON) and returns its path. */
export function writeKubeconfig(file: string, config: unknown, format: 'yaml' | 'json' = 'yaml'): string {
  mkdirSync(path.dirname(file), { recursive: true })
  writeFileSync(file, format === 'json' ? JSON.stringify(config, null, 2) : stringify(config))
  return file
}

/** A connection built directly (no kubeconfig), for client tests. */
export function connectionFor(
  cluster: Partial<ClusterConfig> & { server: string },
  user: Partial<UserConfig> = {},
): KubeConnection {
  return {
    origin: { kind: 'kubeconfig', files: [], source: 'flag', from: '--kubeconfig' },
    context: { value: 'test', source: 'flag', from: '--context' },
    namespace: { value: 'akamas', source: 'default', from: 'default' },
    contexts: ['test'],
    cluster: {
      name: 'test-cluster',
      certificateAuthorityData: undefined,
      certificateAuthorityFile: undefined,
      insecureSkipTlsVerify: false,
      tlsServerName: undefined,
      proxyUrl: undefined,
      disableCompression: false,
      execExtension: undefined,
      definedIn: undefined,
      ...cluster,
    },
    user: {
      name: 'alice',
      definedIn: undefined,
      token: undefined,
      tokenSource: undefined,
      username: undefined,
      password: undefined,
      clientCertificateData: undefined,
      clientKeyData: undefined,
      exec: undefined,
      impersonate: undefined,
      ...user,
    },
  }
}
