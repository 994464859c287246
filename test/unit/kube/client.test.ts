import { writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { AccessError, ExitCode } from '../../../src/errors.js'
import { canI } from '../../../src/kube/access-review.js'
import { isNotFound, KubeApiError, type KubeNotFoundError } from '../../../src/kube/api-errors.js'
import { KubeClient, type KubeClientOptions } from '../../../src/kube/client.js'
import { clearExecCredentialCache } from '../../../src/kube/exec-credential.js'
import type { KubeConnection } from '../../../src/kube/types.js'
import { closeParkedConnections } from '../../../src/kube/warm-connections.js'
import { forgetSecrets, redact } from '../../../src/redact.js'
import {
  connectionFor,
  makePki,
  type Pki,
  removeTempDirs,
  sendJson,
  startApiServer,
  startConnectProxy,
  statusBody,
  type TestProxy,
  type TestServer,
  tempDir,
} from './fixtures.js'

let pki: Pki
let api: TestServer
const TOKEN = 'bearer-token-0123456789'

/** The API server: a few routes that behave like the real one. */
beforeAll(async () => {
  pki = makePki()
  api = await startApiServer(
    { key: pki.serverKey, cert: pki.serverCert, ca: pki.caCert, requestCert: true, rejectUnauthorized: false },
    (req, res, body) => {
      const url = new URL(req.url ?? '/', 'https://x')
      const auth = req.headers.authorization
      const socket = req.socket as import('node:tls').TLSSocket
      const cn = socket.authorized ? (socket.getPeerCertificate().subject?.CN as string | undefined) : undefined
      switch (url.pathname) {
        case '/version':
          return sendJson(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.4' })
        case '/whoami':
          return sendJson(res, 200, { auth: auth ?? null, cn: cn ?? null, query: url.search })
        case '/api/v1/namespaces/akamas/pods':
          if (auth !== `Bearer ${TOKEN}` && !cn && auth !== 'Basic YWRtaW46czNjcjN0LXBhc3N3b3Jk') {
            return sendJson(res, 401, statusBody(401, 'Unauthorized', 'Unauthorized'))
          }
          return sendJson(res, 200, { kind: 'PodList', items: [{ metadata: { name: 'akamas-mgmt-0' } }] })
        case '/api/v1/namespaces/akamas/secrets/ssh':
          return sendJson(
            res,
            403,
            statusBody(
              403,
              'Forbidden',
              'secrets "ssh" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "akamas"',
              { name: 'ssh', kind: 'secrets' },
            ),
          )
        case '/api/v1/namespaces/akamas/secrets/missing':
          return sendJson(
            res,
            404,
            statusBody(404, 'NotFound', 'secrets "missing" not found', { name: 'missing', kind: 'secrets' }),
          )
        case '/boom':
          return sendJson(res, 500, {
            ...statusBody(500, 'InternalError', 'Internal error occurred: etcd is sad'),
            details: { causes: [{ message: 'etcd is sad' }] },
          })
        case '/gateway':
          res.writeHead(502, { 'Content-Type': 'text/plain' })
          return res.end('upstream connect error or disconnect/reset before headers')
        case '/html':
          res.writeHead(200, { 'Content-Type': 'text/html' })
          return res.end('<html>secret-looking page</html>')
        case '/slow':
          return // never answers
        case '/flaky': {
          const served = ((socket as unknown as { served?: number }).served ?? 0) + 1
          ;(socket as unknown as { served?: number }).served = served
          if (served > 1) return socket.destroy()
          return sendJson(res, 200, { ok: true })
        }
        case '/prefix/k8s/clusters/c-1/version':
          return sendJson(res, 200, { prefixed: true })
        case '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews': {
          const review = JSON.parse(body) as { spec: { resourceAttributes: { verb: string; resource: string } } }
          const allowed = review.spec.resourceAttributes.verb === 'get'
          return sendJson(res, 201, { ...review, status: { allowed, reason: allowed ? 'RBAC: allowed by role' : '' } })
        }
        default:
          return sendJson(res, 404, statusBody(404, 'NotFound', 'the server could not find the requested resource'))
      }
    },
  )
})

afterAll(async () => {
  await api.close()
})

const clients: KubeClient[] = []
function client(connection: KubeConnection, options: KubeClientOptions = {}): KubeClient {
  const created = new KubeClient(connection, { env: {}, requestTimeoutMs: 5000, ...options })
  clients.push(created)
  return created
}

beforeEach(() => {
  forgetSecrets()
  clearExecCredentialCache()
  api.requests.length = 0
  api.handshakes = 0
  api.resumed = 0
})

afterEach(() => {
  for (const created of clients.splice(0)) created.close()
  closeParkedConnections()
})

async function failure(promise: Promise<unknown>): Promise<AccessError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(AccessError)
  return error as AccessError
}

const trusted = () => ({ server: api.url, certificateAuthorityData: pki.caCert })

describe('authentication', () => {
  it('sends a bearer token and parses the JSON answer', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }), { userAgent: 'akm-access/test' })
    const pods = await kube.request<{ items: { metadata: { name: string } }[] }>(
      'GET',
      '/api/v1/namespaces/akamas/pods',
      {
        query: { labelSelector: 'app=akamas', limit: 500 },
      },
    )
    expect(pods.items[0]?.metadata.name).toBe('akamas-mgmt-0')
    const [request] = api.requests
    expect(request?.url).toBe('/api/v1/namespaces/akamas/pods?labelSelector=app%3Dakamas&limit=500')
    expect(request?.headers.authorization).toBe(`Bearer ${TOKEN}`)
    expect(request?.headers['user-agent']).toBe('akm-access/test')
    expect(request?.headers.accept).toBe('application/json')
  })

  it('authenticates with a client certificate verified against the CA', async () => {
    const kube = client(
      connectionFor(trusted(), { clientCertificateData: pki.clientCert, clientKeyData: pki.clientKey }),
    )
    const pods = await kube.request<{ kind: string }>('GET', '/api/v1/namespaces/akamas/pods')
    expect(pods.kind).toBe('PodList')
    expect(api.requests[0]?.clientCN).toBe('alice')
    expect(api.requests[0]?.headers.authorization).toBeUndefined()
  })

  it('uses basic auth', async () => {
    const kube = client(connectionFor(trusted(), { username: 'admin', password: 's3cr3t-password' }))
    await kube.request('GET', '/api/v1/namespaces/akamas/pods')
    expect(api.requests[0]?.headers.authorization).toBe('Basic YWRtaW46czNjcjN0LXBhc3N3b3Jk')
    expect(redact('Basic YWRtaW46czNjcjN0LXBhc3N3b3Jk')).toBe('Basic [redacted]')
  })

  it('sends impersonation headers', async () => {
    const kube = client(
      connectionFor(trusted(), {
        token: TOKEN,
        impersonate: { user: 'bob', uid: '42', groups: ['admins', 'devs'], extra: { scopes: ['view', 'edit'] } },
      }),
    )
    await kube.request('GET', '/whoami')
    const headers = api.requests[0]?.headers
    expect(headers?.['impersonate-user']).toBe('bob')
    expect(headers?.['impersonate-uid']).toBe('42')
    expect(headers?.['impersonate-group']).toBe('admins, devs')
    expect(headers?.['impersonate-extra-scopes']).toBe('view, edit')
  })

  it('runs the exec plugin lazily, once, and again after a 401', async () => {
    const dir = tempDir('akm-client-exec-')
    const counter = path.join(dir, 'runs')
    const plugin = path.join(dir, 'plugin.mjs')
    // First run: a token the server rejects; second run: the good one.
    writeFileSync(
      plugin,
      `import fs from 'node:fs'
const n = fs.existsSync(${JSON.stringify(counter)}) ? Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1 : 1
fs.writeFileSync(${JSON.stringify(counter)}, String(n))
process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: n === 1 ? 'stale-token-value' : ${JSON.stringify(TOKEN)} } }))`,
    )
    const kube = client(
      connectionFor(trusted(), {
        exec: {
          command: process.execPath,
          args: [plugin],
          env: [],
          apiVersion: 'client.authentication.k8s.io/v1',
          installHint: undefined,
          provideClusterInfo: false,
          interactiveMode: 'Never',
        },
      }),
      { execIo: { stdin: 'inherit', stderr: 'inherit', stdinIsTTY: false } },
    )
    const { readFileSync, existsSync } = await import('node:fs')
    expect(existsSync(counter)).toBe(false)
    await kube.request('GET', '/api/v1/namespaces/akamas/pods')
    await kube.request('GET', '/api/v1/namespaces/akamas/pods')
    expect(readFileSync(counter, 'utf8')).toBe('2')
    expect(api.requests.map((r) => r.headers.authorization)).toEqual([
      'Bearer stale-token-value',
      `Bearer ${TOKEN}`,
      `Bearer ${TOKEN}`,
    ])
  })

  it('sends no credentials to a plain http:// server, as kubectl', async () => {
    const plain = await startApiServer(undefined, (_req, res) => sendJson(res, 200, { ok: true }))
    try {
      const kube = client(connectionFor({ server: plain.url }, { token: TOKEN }))
      expect(await kube.request('GET', '/version')).toEqual({ ok: true })
      expect(plain.requests[0]?.headers.authorization).toBeUndefined()
    } finally {
      await plain.close()
    }
  })

  it('builds URLs: server prefix kept, repeated keys, query in the path merged, default port in messages', () => {
    const kube = client(connectionFor({ server: 'https://kube.example.com/k8s/clusters/c-1' }))
    expect(kube.url('/api/v1/x?watch=1', { command: ['sh', '-c', 'a b'], tty: false, skip: undefined }).href).toBe(
      'https://kube.example.com/k8s/clusters/c-1/api/v1/x?watch=1&command=sh&command=-c&command=a+b&tty=false',
    )
    expect(kube.requestContext('GET', '/x').server).toBe('kube.example.com:443')
    expect(client(connectionFor({ server: 'https://[fd00::1]:6443' })).requestContext('GET', '/').server).toBe(
      '[fd00::1]:6443',
    )
  })

  it('keeps the path prefix of the server URL', async () => {
    const kube = client(connectionFor({ ...trusted(), server: `${api.url}/prefix/k8s/clusters/c-1` }, { token: TOKEN }))
    expect(await kube.request('GET', '/version')).toEqual({ prefixed: true })
  })

  it('POSTs JSON (SelfSubjectAccessReview)', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }))
    expect(await canI(kube, { verb: 'get', resource: 'secrets', namespace: 'akamas', name: 'ssh' })).toEqual({
      allowed: true,
      denied: false,
      reason: 'RBAC: allowed by role',
    })
    expect(
      await canI(kube, { verb: 'create', resource: 'pods', subresource: 'exec', namespace: 'akamas' }),
    ).toMatchObject({
      allowed: false,
    })
    const first = api.requests[0]
    expect(first?.method).toBe('POST')
    expect(first?.headers['content-type']).toBe('application/json')
    expect(JSON.parse(first?.body ?? '')).toEqual({
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      spec: { resourceAttributes: { verb: 'get', resource: 'secrets', namespace: 'akamas', name: 'ssh' } },
    })
  })
})

describe('TLS', () => {
  it('fails without the CA, as a TLS error naming the server', async () => {
    const kube = client(connectionFor({ server: api.url }, { token: TOKEN }))
    const error = await failure(kube.request('GET', '/version'))
    expect(error.exitCode).toBe(ExitCode.tls)
    expect(error.message).toBe(
      // The test server sends its CA along (it has `ca` set to verify client certificates), hence "in chain".
      `the API server at 127.0.0.1:${api.port} presented a certificate that is not trusted (SELF_SIGNED_CERT_IN_CHAIN)`,
    )
    expect(error.hint).toContain('has no certificate-authority-data')
    expect(api.requests).toHaveLength(0)
  })

  it('reports UNABLE_TO_VERIFY_LEAF_SIGNATURE when the server sends only its own certificate', async () => {
    const leafOnly = await startApiServer({ key: pki.serverKey, cert: pki.serverCert }, (_req, res) =>
      sendJson(res, 200, {}),
    )
    try {
      const error = await failure(client(connectionFor({ server: leafOnly.url })).request('GET', '/version'))
      expect(error.exitCode).toBe(ExitCode.tls)
      expect(error.message).toBe(
        `the API server at 127.0.0.1:${leafOnly.port} presented a certificate that is not trusted (UNABLE_TO_VERIFY_LEAF_SIGNATURE)`,
      )
    } finally {
      await leafOnly.close()
    }
  })

  it('maps a TLS-level client certificate requirement to unauthorized', async () => {
    const mtls = await startApiServer(
      { key: pki.serverKey, cert: pki.serverCert, ca: pki.caCert, requestCert: true, rejectUnauthorized: true },
      (_req, res) => sendJson(res, 200, { ok: true }),
    )
    try {
      const error = await failure(
        client(connectionFor({ server: mtls.url, certificateAuthorityData: pki.caCert }, { token: TOKEN })).request(
          'GET',
          '/x',
        ),
      )
      expect(error.exitCode).toBe(ExitCode.unauthorized)
      expect(error.message).toBe(
        `the API server at 127.0.0.1:${mtls.port} requires a client certificate during the TLS handshake, and we have none (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED)`,
      )
      const ok = client(
        connectionFor(
          { server: mtls.url, certificateAuthorityData: pki.caCert },
          { clientCertificateData: pki.clientCert, clientKeyData: pki.clientKey },
        ),
      )
      expect(await ok.request('GET', '/x')).toEqual({ ok: true })
    } finally {
      await mtls.close()
    }
  })

  it('fails with the wrong CA, and says the kubeconfig CA does not match', async () => {
    const kube = client(connectionFor({ server: api.url, certificateAuthorityData: pki.otherCaCert }, { token: TOKEN }))
    const error = await failure(kube.request('GET', '/version'))
    expect(error.exitCode).toBe(ExitCode.tls)
    expect(error.hint).toBe(
      'the certificate-authority-data of cluster "test-cluster" does not match the server: get a fresh kubeconfig for this cluster',
    )
  })

  it('recognises a self-signed server certificate', async () => {
    const self = await startApiServer({ key: pki.selfSignedKey, cert: pki.selfSignedCert }, (_req, res) =>
      sendJson(res, 200, {}),
    )
    try {
      const error = await failure(client(connectionFor({ server: self.url })).request('GET', '/version'))
      expect(error.message).toContain('not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)')
      expect(error.exitCode).toBe(ExitCode.tls)
    } finally {
      await self.close()
    }
  })

  it('connects with insecure-skip-tls-verify', async () => {
    const kube = client(connectionFor({ server: api.url, insecureSkipTlsVerify: true }, { token: TOKEN }))
    expect(await kube.request('GET', '/version')).toMatchObject({ minor: '32' })
  })

  it('verifies against tls-server-name and sends it as SNI', async () => {
    const named = await startApiServer({ key: pki.namedKey, cert: pki.namedCert }, (_req, res) =>
      sendJson(res, 200, { ok: 1 }),
    )
    try {
      const wrongName = await failure(
        client(connectionFor({ server: named.url, certificateAuthorityData: pki.caCert })).request('GET', '/version'),
      )
      expect(wrongName.exitCode).toBe(ExitCode.tls)
      expect(wrongName.message).toBe(
        `the API server at 127.0.0.1:${named.port} presented a certificate that is not valid for 127.0.0.1`,
      )
      expect(wrongName.hint).toContain('tls-server-name')
      const kube = client(
        connectionFor({ server: named.url, certificateAuthorityData: pki.caCert, tlsServerName: 'api.internal' }),
      )
      expect(await kube.request('GET', '/version')).toEqual({ ok: 1 })
      expect(named.requests[0]?.servername).toBe('api.internal')
    } finally {
      await named.close()
    }
  })

  it('reports a malformed client key as a config error before connecting', async () => {
    const kube = client(
      connectionFor(trusted(), {
        clientCertificateData: pki.clientCert,
        clientKeyData: '-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n',
      }),
    )
    const error = await failure(kube.request('GET', '/version'))
    expect(error.exitCode).toBe(ExitCode.config)
    expect(error.message).toMatch(/^cannot use the client certificate of user "alice"/)
    expect(api.requests).toHaveLength(0)
  })
})

describe('network failures', () => {
  it('maps a refused connection, naming host:port and the absence of a proxy', async () => {
    const port = await closedPort()
    const error = await failure(
      client(connectionFor({ server: `https://127.0.0.1:${port}` })).request('GET', '/version'),
    )
    expect(error.exitCode).toBe(ExitCode.unreachable)
    expect(error.message).toBe(`cannot connect to the API server at 127.0.0.1:${port} (no proxy): connection refused`)
    expect(error.hint).toContain('VPN')
  })

  it('times out per --request-timeout (connect + answer)', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }), { requestTimeoutMs: 300 })
    const started = performance.now()
    const error = await failure(kube.request('GET', '/slow'))
    const elapsed = performance.now() - started
    expect(error.exitCode).toBe(ExitCode.unreachable)
    expect(error.message).toBe(`the API server at 127.0.0.1:${api.port} did not answer within 300ms (no proxy)`)
    expect(error.hint).toContain('--request-timeout')
    expect(elapsed).toBeGreaterThanOrEqual(290)
    expect(elapsed).toBeLessThan(2000)
  })

  it('times out a server that accepts TCP but never speaks TLS', async () => {
    const sockets: net.Socket[] = []
    const mute = net.createServer((socket) => sockets.push(socket))
    await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve))
    const port = (mute.address() as net.AddressInfo).port
    try {
      const error = await failure(
        client(connectionFor({ server: `https://127.0.0.1:${port}` }), { requestTimeoutMs: 200 }).request(
          'GET',
          '/version',
        ),
      )
      expect(error.message).toBe(`the API server at 127.0.0.1:${port} did not answer within 200ms (no proxy)`)
    } finally {
      for (const socket of sockets) socket.destroy()
      mute.close()
    }
  })

  it('retries an idempotent request once when a kept-alive connection turns out to be closed', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }))
    expect(await kube.request('GET', '/flaky')).toEqual({ ok: true })
    expect(await kube.request('GET', '/flaky')).toEqual({ ok: true })
    expect(api.handshakes).toBe(2)
  })
})

describe('API errors', () => {
  const kube = () => client(connectionFor(trusted(), { token: TOKEN }))

  it('401 → unauthorized, with a re-login hint and no token in the message', async () => {
    const error = await failure(
      client(connectionFor(trusted(), { token: 'expired-token-value', tokenSource: 'token' })).request(
        'GET',
        '/api/v1/namespaces/akamas/pods',
      ),
    )
    expect(error).toBeInstanceOf(KubeApiError)
    expect(error.exitCode).toBe(ExitCode.unauthorized)
    expect(error.message).toBe(
      'the API server rejected the credentials of user "alice" (context "test") (401 Unauthorized)',
    )
    expect(error.hint).toBe(
      'the token (token) may have expired or been revoked: log in again with your cloud CLI or get a fresh kubeconfig',
    )
    expect(`${error.message}${error.hint}`).not.toContain('expired-token-value')
  })

  it('403 → forbidden, phrased from the RBAC rule', async () => {
    const error = await failure(kube().request('GET', '/api/v1/namespaces/akamas/secrets/ssh'))
    expect(error.exitCode).toBe(ExitCode.forbidden)
    expect(error.message).toBe('you may not get secrets in namespace akamas')
    expect(error.hint).toBe(
      'ask your cluster administrator for an RBAC Role that allows "get" on "secrets" in namespace akamas for User "alice" (check with `kubectl auth can-i get secrets -n akamas`)',
    )
    expect((error as KubeApiError).httpStatus).toBe(403)
    expect((error as KubeApiError).reason).toBe('Forbidden')
  })

  it('404 → a typed NotFound the caller can map', async () => {
    const error = await failure(kube().request('GET', '/api/v1/namespaces/akamas/secrets/missing'))
    expect(isNotFound(error)).toBe(true)
    const notFound = error as KubeNotFoundError
    expect(notFound.message).toBe('secrets "missing" not found')
    expect(notFound.kind).toBe('secrets')
    expect(notFound.resourceName).toBe('missing')
  })

  it('500 → the Status message', async () => {
    const error = await failure(kube().request('GET', '/boom'))
    expect(error.message).toBe('the API server failed: Internal error occurred: etcd is sad')
    expect(error.exitCode).toBe(ExitCode.internal)
  })

  it('a gateway error → unreachable, with a short text excerpt', async () => {
    const error = await failure(kube().request('GET', '/gateway'))
    expect(error.exitCode).toBe(ExitCode.unreachable)
    expect(error.message).toBe(
      `the API server at 127.0.0.1:${api.port} is not available: upstream connect error or disconnect/reset before headers`,
    )
  })

  it('a 200 that is not JSON never quotes the body', async () => {
    const error = await failure(kube().request('GET', '/html'))
    expect(error.message).toBe("the API server's answer to GET /html is not JSON (text/html)")
    expect(error.message).not.toContain('secret-looking')
  })
})

describe('connection reuse', () => {
  it('makes one TLS handshake for several sequential requests', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }))
    for (let i = 0; i < 5; i++) await kube.request('GET', '/version')
    expect(api.requests).toHaveLength(5)
    expect(api.handshakes).toBe(1)
  })

  it('resumes the TLS session for parallel requests opened after the first one', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }))
    await kube.request('GET', '/version')
    await Promise.all([
      kube.request('GET', '/version'),
      kube.request('GET', '/version'),
      kube.request('GET', '/version'),
    ])
    expect(api.handshakes).toBe(3)
    expect(api.resumed).toBe(2)
  })
})

describe('connections opened ahead (preconnect, for bin/run.js)', () => {
  const handshakesReach = async (count: number) => {
    for (let i = 0; i < 200 && api.handshakes < count; i++) await new Promise((resolve) => setTimeout(resolve, 10))
    expect(api.handshakes).toBe(count)
  }

  it('a later client with the same parameters takes the parked connections: no handshake of its own', async () => {
    client(connectionFor(trusted(), { token: TOKEN })).preconnect(2)
    await handshakesReach(2)
    expect(api.requests).toHaveLength(0)
    const kube = client(connectionFor(trusted(), { token: TOKEN }))
    await Promise.all([kube.request('GET', '/version'), kube.request('GET', '/version')])
    expect(api.requests).toHaveLength(2)
    expect(api.handshakes).toBe(2)
  })

  it('a connection made with one client certificate never serves another identity', async () => {
    const certificate = { clientCertificateData: pki.clientCert, clientKeyData: pki.clientKey }
    client(connectionFor(trusted(), certificate)).preconnect(1)
    await handshakesReach(1)
    // A token user: its own connection, presenting no certificate.
    const withToken = await client(connectionFor(trusted(), { token: TOKEN })).request<{ cn: string | null }>(
      'GET',
      '/whoami',
    )
    expect(withToken.cn).toBeNull()
    expect(api.handshakes).toBe(2)
    // The certificate user: the parked connection, authenticated as the certificate's subject.
    const withCertificate = await client(connectionFor(trusted(), certificate)).request<{ cn: string | null }>(
      'GET',
      '/whoami',
    )
    expect(withCertificate.cn).toBe('alice')
    expect(api.handshakes).toBe(2)
  })

  it('a parked connection that failed (an untrusted server) is dropped: the request reports its own TLS error', async () => {
    client(connectionFor({ server: api.url })).preconnect(1)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const error = await failure(client(connectionFor({ server: api.url }, { token: TOKEN })).request('GET', '/version'))
    expect(error.exitCode).toBe(ExitCode.tls)
  })

  it('opens nothing ahead through a proxy or over plain HTTP', async () => {
    client(connectionFor({ ...trusted(), proxyUrl: 'http://127.0.0.1:9' })).preconnect(2)
    client(connectionFor({ server: 'http://127.0.0.1:9' })).preconnect(2)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(api.handshakes).toBe(0)
  })
})

describe('proxies', () => {
  let proxy: TestProxy
  beforeEach(async () => {
    proxy = await startConnectProxy()
  })
  afterEach(async () => {
    await proxy.close()
  })

  it('tunnels through the kubeconfig proxy-url', async () => {
    const kube = client(connectionFor({ ...trusted(), proxyUrl: proxy.url }, { token: TOKEN }))
    expect(kube.proxy?.from).toBe('proxy-url in the kubeconfig')
    expect(await kube.request('GET', '/version')).toMatchObject({ minor: '32' })
    await kube.request('GET', '/version')
    expect(proxy.connects).toEqual([`127.0.0.1:${api.port}`])
    expect(api.handshakes).toBe(1)
  })

  it('uses HTTPS_PROXY with credentials (kube.test only resolves inside the proxy)', async () => {
    const kube = client(
      connectionFor(
        { server: `https://kube.test:${api.port}`, certificateAuthorityData: pki.caCert },
        { token: TOKEN },
      ),
      { env: { HTTPS_PROXY: `http://proxyuser:pr%40xy-pass@127.0.0.1:${proxy.port}`, NO_PROXY: 'example.com' } },
    )
    expect(kube.proxy?.display).toBe(`http://127.0.0.1:${proxy.port}`)
    expect(await kube.request('GET', '/version')).toMatchObject({ minor: '32' })
    expect(proxy.connects).toEqual([`kube.test:${api.port}`])
    expect(proxy.authorizations).toEqual([`Basic ${Buffer.from('proxyuser:pr@xy-pass').toString('base64')}`])
    expect(api.requests[0]?.headers.host).toBe(`kube.test:${api.port}`)
    expect(redact('pr@xy-pass')).toBe('[redacted]')
  })

  it('uses lower-case https_proxy too', async () => {
    const kube = client(
      connectionFor(
        { server: `https://kube.test:${api.port}`, certificateAuthorityData: pki.caCert },
        { token: TOKEN },
      ),
      { env: { https_proxy: `127.0.0.1:${proxy.port}` } },
    )
    await kube.request('GET', '/version')
    expect(proxy.connects).toEqual([`kube.test:${api.port}`])
  })

  it('bypasses the proxy for NO_PROXY hosts (so kube.test is resolved locally and fails)', async () => {
    const kube = client(
      connectionFor(
        { server: `https://kube.test:${api.port}`, certificateAuthorityData: pki.caCert },
        { token: TOKEN },
      ),
      { env: { HTTPS_PROXY: proxy.url, NO_PROXY: 'example.com, .test' } },
    )
    expect(kube.proxy).toBeUndefined()
    const error = await failure(kube.request('GET', '/version'))
    expect(error.exitCode).toBe(ExitCode.unreachable)
    expect(error.message).toBe('cannot resolve kube.test, the host of the API server (no proxy)')
    expect(proxy.connects).toEqual([])
  })

  it('never proxies loopback addresses (Go rule), even without NO_PROXY', async () => {
    const kube = client(connectionFor(trusted(), { token: TOKEN }), { env: { HTTPS_PROXY: proxy.url } })
    await kube.request('GET', '/version')
    expect(proxy.connects).toEqual([])
  })

  it('lets proxy-url win over NO_PROXY', async () => {
    const kube = client(connectionFor({ ...trusted(), proxyUrl: proxy.url }, { token: TOKEN }), {
      env: { NO_PROXY: '*' },
    })
    await kube.request('GET', '/version')
    expect(proxy.connects).toHaveLength(1)
  })

  it('reports a proxy that asks for authentication', async () => {
    const strict = await startConnectProxy({ requireAuth: 'Basic nope' })
    try {
      const error = await failure(
        client(connectionFor({ ...trusted(), proxyUrl: strict.url }, { token: TOKEN })).request('GET', '/version'),
      )
      expect(error.exitCode).toBe(ExitCode.unreachable)
      expect(error.message).toBe(
        `the proxy ${strict.url} (from proxy-url in the kubeconfig) requires authentication (407)`,
      )
    } finally {
      await strict.close()
    }
  })

  it('reports a proxy that refuses the tunnel, and one that cannot be reached', async () => {
    const refusing = await startConnectProxy({ refuseWith: 403 })
    try {
      const refused = await failure(
        client(connectionFor({ ...trusted(), proxyUrl: refusing.url })).request('GET', '/version'),
      )
      expect(refused.message).toBe(
        `the proxy ${refusing.url} (from proxy-url in the kubeconfig) could not open a tunnel to 127.0.0.1:${api.port} (403 Refused By Test)`,
      )
    } finally {
      await refusing.close()
    }
    const port = await closedPort()
    const unreachable = await failure(
      client(connectionFor({ server: `https://kube.test:${api.port}` }), {
        env: { HTTPS_PROXY: `http://127.0.0.1:${port}` },
      }).request('GET', '/version'),
    )
    expect(unreachable.exitCode).toBe(ExitCode.unreachable)
    expect(unreachable.message).toBe(
      `cannot reach the proxy http://127.0.0.1:${port} (from HTTPS_PROXY): connection refused`,
    )
    expect(unreachable.hint).toBe('check HTTPS_PROXY (and NO_PROXY)')
  })

  it('rejects SOCKS proxies clearly', () => {
    expect(() => client(connectionFor({ ...trusted(), proxyUrl: 'socks5://127.0.0.1:1080' }))).toThrow(
      'SOCKS proxies are not supported yet (socks5://127.0.0.1:1080 from proxy-url in the kubeconfig)',
    )
  })
})

async function closedPort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

afterAll(() => {
  removeTempDirs()
})
