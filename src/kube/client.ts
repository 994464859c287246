/**
 * A small REST client for the Kubernetes API server on `node:https`, used instead of @kubernetes/client-node's
 * transport, whose import alone costs about 400 ms and which lacks kubectl's proxy, exec-plugin and error behaviour.
 * One keep-alive agent carries every request and the WebSocket upgrades (websocket.ts), so the TCP+TLS connection
 * and TLS session are reused; it also opens HTTP CONNECT tunnels when a proxy applies. Authentication follows
 * client-go: bearer token, basic auth or client certificate from the kubeconfig, else an exec plugin (run lazily on
 * the first request, and once more if the server answers 401), and credentials are only ever sent over TLS.
 */
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import { AccessError, ExitCode } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { registerSecret } from '../redact.js'
import {
  errorFromResponse,
  errorFromTransport,
  KubeApiError,
  type RequestContext,
  RequestTimeoutError,
} from './api-errors.js'
import type { ExecPluginIo } from './exec-credential.js'
import { connectThroughProxy, type ProxySetting, selectProxy } from './proxy.js'
import { authKind, type Env, type KubeConnection, type QueryParams } from './types.js'
import { parkConnection, takeConnection, wasOpenedAhead } from './warm-connections.js'

export interface KubeClientOptions {
  /** --request-timeout in milliseconds, covering connect, TLS and the whole answer; 0 = none. Default 30 s. */
  readonly requestTimeoutMs?: number
  /** For HTTPS_PROXY/HTTP_PROXY/NO_PROXY and the exec plugin's environment. Default `process.env`. */
  readonly env?: Env
  readonly logger?: Logger
  readonly userAgent?: string
  /** The exec plugin's stdin/stderr. Default: this process's. */
  readonly execIo?: ExecPluginIo
  /** For `~` in messages. */
  readonly homeDir?: string | undefined
  readonly now?: () => number
}

export interface RequestOptions {
  readonly query?: QueryParams
  /** Sent as JSON. */
  readonly body?: unknown
  /** Default `application/json`. */
  readonly accept?: string
  readonly headers?: Readonly<Record<string, string>>
  readonly signal?: AbortSignal
}

/** What a raw request (a WebSocket upgrade) needs to reach the API server exactly as `request` does. */
export interface KubeTransport {
  /** The shared keep-alive agent: TLS options, client certificate and proxy tunnel included. */
  readonly agent: http.Agent
  /** Authorization, impersonation and User-Agent. */
  readonly headers: Readonly<Record<string, string | string[]>>
  /** True when the credentials come from an exec plugin, so a 401 is worth one `refreshCredentials()`. */
  readonly refreshable: boolean
}

/** kubectl's dialer: give up connecting after 30 s even when --request-timeout is 0. */
const CONNECT_TIMEOUT_MS = 30_000
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'])

export class KubeClient {
  readonly connection: KubeConnection
  /** The API server URL (may carry a path prefix, e.g. Rancher's /k8s/clusters/c-x). */
  readonly serverUrl: URL
  /** The proxy in use, or undefined for a direct connection. */
  readonly proxy: ProxySetting | undefined
  readonly requestTimeoutMs: number
  readonly logger: Logger
  readonly #options: KubeClientOptions
  readonly #env: Env
  #transport: Promise<KubeTransport> | undefined
  readonly #refreshed = new WeakSet<KubeTransport>()
  #agent: { key: string; agent: http.Agent } | undefined

  constructor(connection: KubeConnection, options: KubeClientOptions = {}) {
    this.connection = connection
    this.#options = options
    this.#env = options.env ?? process.env
    this.serverUrl = new URL(connection.cluster.server)
    this.proxy = selectProxy(this.serverUrl, this.#env, connection.cluster.proxyUrl)
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000
    this.logger = options.logger ?? silentLogger
  }

  /** The full URL of an API path, keeping the server's path prefix. Arrays repeat the key; undefined is left out. */
  url(path: string, query?: QueryParams): URL {
    const url = new URL(this.serverUrl.href)
    const [pathname = '', search] = path.split('?', 2)
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${pathname.startsWith('/') ? pathname : `/${pathname}`}`
    url.search = search === undefined ? '' : `?${search}`
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value === undefined) continue
      if (Array.isArray(value)) for (const item of value) url.searchParams.append(key, String(item))
      else url.searchParams.append(key, String(value))
    }
    return url
  }

  /** Agent and headers, resolving credentials (running the exec plugin) on first use. */
  transport(): Promise<KubeTransport> {
    if (!this.#transport) {
      const building = this.#buildTransport(false)
      this.#transport = building
      building.catch(() => {
        if (this.#transport === building) this.#transport = undefined
      })
    }
    return this.#transport
  }

  /**
   * After a 401 with exec credentials: the next `transport()` runs the plugin again. Concurrent callers holding the
   * same stale transport trigger a single run.
   */
  refreshCredentials(stale: KubeTransport): void {
    if (this.#refreshed.has(stale)) return
    this.#refreshed.add(stale)
    const building = this.#buildTransport(true)
    this.#transport = building
    building.catch(() => {
      if (this.#transport === building) this.#transport = undefined
    })
  }

  /** For errorFromResponse/errorFromTransport. */
  requestContext(method: string, path: string): RequestContext {
    return {
      method,
      path,
      server: `${this.serverUrl.hostname}:${this.serverUrl.port || (this.serverUrl.protocol === 'http:' ? 80 : 443)}`,
      proxy: this.proxy,
      cluster: this.connection.cluster,
      user: this.connection.user,
      contextName: this.connection.context?.value,
      requestTimeoutMs: this.requestTimeoutMs,
      homeDir: this.#options.homeDir,
    }
  }

  /**
   * Sends a request and returns the parsed JSON answer (undefined for an empty body). Throws AccessError for every
   * failure: KubeNotFoundError for 404, KubeApiError for other statuses, plain AccessError for network and TLS.
   */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const context = this.requestContext(method, path)
    let refreshed = false
    let retriedStale = false
    for (;;) {
      const transport = await this.transport()
      let answer: Answer
      try {
        answer = await this.#send(transport, method, path, options)
      } catch (error) {
        if (error instanceof StaleSocketError && !retriedStale && IDEMPOTENT.has(method.toUpperCase())) {
          retriedStale = true
          this.logger.debug(`${method} ${path}: kept-alive connection was closed by the server, retrying`)
          continue
        }
        throw errorFromTransport(error instanceof StaleSocketError ? error.cause : error, context)
      }
      if (answer.status === 401 && transport.refreshable && !refreshed) {
        refreshed = true
        this.logger.debug('401 with exec credentials: running the credential plugin again')
        this.refreshCredentials(transport)
        continue
      }
      if (answer.status < 200 || answer.status > 299) {
        throw errorFromResponse(answer.status, answer.statusText, answer.contentType, answer.body, context)
      }
      if (answer.body.length === 0) return undefined as T
      try {
        return JSON.parse(answer.body.toString('utf8')) as T
      } catch {
        // Never quote the body: it may be a Secret.
        throw new KubeApiError(
          `the API server's answer to ${method} ${path} is not JSON (${answer.contentType ?? 'no content type'})`,
          answer.status,
          undefined,
          undefined,
          { exitCode: ExitCode.internal, hint: 'is the server URL really a Kubernetes API server?' },
        )
      }
    }
  }

  /**
   * Opens `count` connections now and parks them for the client that will need them (see warm-connections.ts), so
   * that their handshakes overlap start-up. Only direct HTTPS connections are opened ahead: a proxy tunnel is set up
   * by the client that uses it. The certificate is the kubeconfig's own; one an exec plugin returns makes different
   * connections, and the parked ones go unused.
   */
  preconnect(count: number): void {
    if (this.serverUrl.protocol !== 'https:' || this.proxy) return
    const { user } = this.connection
    const agent = this.#agentFor(user.clientCertificateData, user.clientKeyData)
    if (!(agent instanceof ApiServerHttpsAgent)) return
    for (let i = 0; i < count; i++)
      agent.preconnect(unbracket(this.serverUrl.hostname), Number(this.serverUrl.port || 443))
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#agent?.agent.destroy()
    this.#agent = undefined
  }

  async #buildTransport(refresh: boolean): Promise<KubeTransport> {
    const { cluster, user } = this.connection
    const secure = this.serverUrl.protocol === 'https:'
    let token = user.token
    let cert = user.clientCertificateData
    let key = user.clientKeyData
    let refreshable = false
    if (secure && authKind(user) === 'exec' && user.exec) {
      // Loaded only for exec users: it pulls in child_process.
      const { getExecCredential } = await import('./exec-credential.js')
      const credential = await getExecCredential(
        user.exec,
        cluster,
        {
          env: this.#env,
          ...(this.#options.execIo ? { io: this.#options.execIo } : {}),
          logger: this.logger,
          ...(this.#options.now ? { now: this.#options.now } : {}),
        },
        { refresh },
      )
      token = credential.token
      cert = credential.clientCertificateData
      key = credential.clientKeyData
      refreshable = true
    }
    const headers: Record<string, string | string[]> = {
      'User-Agent':
        this.#options.userAgent ?? `akm-access node/${process.version} (${process.platform}/${process.arch})`,
    }
    if (secure) {
      // client-go sends credentials only over TLS; so do we.
      if (token !== undefined) headers.Authorization = `Bearer ${token}`
      else if (user.username !== undefined || user.password !== undefined) {
        const basic = Buffer.from(`${user.username ?? ''}:${user.password ?? ''}`).toString('base64')
        registerSecret(basic)
        headers.Authorization = `Basic ${basic}`
      }
    } else if (authKind(user) !== 'none') {
      this.logger.debug(`${this.serverUrl.protocol}// server: credentials are not sent over plain HTTP (as kubectl)`)
    }
    const impersonate = user.impersonate
    if (impersonate) {
      if (impersonate.user) headers['Impersonate-User'] = impersonate.user
      if (impersonate.uid) headers['Impersonate-Uid'] = impersonate.uid
      if (impersonate.groups.length) headers['Impersonate-Group'] = [...impersonate.groups]
      for (const [name, values] of Object.entries(impersonate.extra)) {
        headers[`Impersonate-Extra-${encodeURIComponent(name)}`] = [...values]
      }
    }
    return { agent: this.#agentFor(secure ? cert : undefined, secure ? key : undefined), headers, refreshable }
  }

  #agentFor(cert: string | undefined, key: string | undefined): http.Agent {
    const agentKey = `${cert ?? ''}\0${key ?? ''}`
    if (this.#agent?.key === agentKey) return this.#agent.agent
    const previous = this.#agent?.agent
    const { cluster } = this.connection
    // With a request timeout, the request's own deadline fires first (and names it); this one only cleans up a
    // proxy tunnel still being opened. Without one, it is kubectl's dial timeout.
    const connectTimeoutMs = this.requestTimeoutMs > 0 ? this.requestTimeoutMs + 1000 : CONNECT_TIMEOUT_MS
    let agent: http.Agent
    if (this.serverUrl.protocol === 'https:') {
      let secureContext: tls.SecureContext
      try {
        // One context for every connection: the CA bundle and key are parsed once.
        secureContext = tls.createSecureContext({
          ...(cluster.certificateAuthorityData ? { ca: cluster.certificateAuthorityData } : {}),
          ...(cert && key ? { cert, key } : {}),
        })
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? 'invalid PEM'
        throw new AccessError(
          cert
            ? `cannot use the client certificate of user "${this.connection.user.name}" or the CA of cluster "${cluster.name}" (${reason})`
            : `cannot use the certificate authority of cluster "${cluster.name}" (${reason})`,
          {
            exitCode: ExitCode.config,
            hint: 'the kubeconfig holds a malformed certificate or key: get a fresh one',
            cause: error,
          },
        )
      }
      agent = new ApiServerHttpsAgent(
        {
          keepAlive: true,
          secureContext,
          rejectUnauthorized: !cluster.insecureSkipTlsVerify,
          ...(cluster.tlsServerName ? { servername: cluster.tlsServerName } : {}),
          ALPNProtocols: ['http/1.1'],
        },
        this.proxy,
        connectTimeoutMs,
        // Everything that makes one connection interchangeable with another (warm-connections.ts).
        JSON.stringify([
          this.serverUrl.host,
          cluster.certificateAuthorityData ?? null,
          cluster.insecureSkipTlsVerify ?? null,
          cluster.tlsServerName ?? null,
          cert ?? null,
          key ?? null,
        ]),
      )
    } else {
      agent = new ApiServerHttpAgent({ keepAlive: true }, this.proxy, connectTimeoutMs)
    }
    this.#agent = { key: agentKey, agent }
    // A new client certificate means new connections; let the old ones finish and close.
    if (previous) setTimeout(() => previous.destroy(), 1000).unref()
    return agent
  }

  async #send(transport: KubeTransport, method: string, path: string, options: RequestOptions): Promise<Answer> {
    const url = this.url(path, options.query)
    const secure = url.protocol === 'https:'
    const payload = options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body))
    const headers: Record<string, string | string[] | number> = {
      ...transport.headers,
      Accept: options.accept ?? 'application/json',
      ...options.headers,
    }
    if (payload) {
      headers['Content-Type'] = 'application/json'
      headers['Content-Length'] = payload.length
    }
    const started = performance.now()
    return await new Promise<Answer>((resolve, reject) => {
      let settled = false
      const finish = (error: unknown, answer?: Answer) => {
        if (settled) return
        settled = true
        if (timer) clearTimeout(timer)
        if (error) reject(error)
        else resolve(answer!)
      }
      const req = (secure ? https : http).request({
        agent: transport.agent,
        method,
        protocol: url.protocol,
        hostname: unbracket(url.hostname),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        headers,
        ...(options.signal ? { signal: options.signal } : {}),
      })
      const timer =
        this.requestTimeoutMs > 0
          ? setTimeout(() => req.destroy(new RequestTimeoutError(this.requestTimeoutMs)), this.requestTimeoutMs)
          : undefined
      let responded = false
      // Kept for the request's whole life: Node may report a late socket error after we gave up on it.
      req.on('error', (error) => {
        finish(!responded && req.reusedSocket && isResetError(error) ? new StaleSocketError(error) : error)
      })
      req.on('response', (res) => {
        responded = true
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', (error) => finish(error))
        res.on('aborted', () => finish(Object.assign(new Error('the answer was cut off'), { code: 'ECONNRESET' })))
        res.on('end', () => {
          const status = res.statusCode ?? 0
          this.logger.debug(
            `${method} ${url.pathname}${url.search} → ${status} in ${(performance.now() - started).toFixed(0)} ms` +
              `${req.reusedSocket ? ' (reused connection)' : wasOpenedAhead(req.socket) ? ' (connection opened at start-up)' : ''}` +
              `${this.proxy ? ` via ${this.proxy.display}` : ''}`,
          )
          finish(undefined, {
            status,
            statusText: res.statusMessage,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks),
          })
        })
      })
      req.end(payload)
    })
  }
}

interface Answer {
  readonly status: number
  readonly statusText: string | undefined
  readonly contentType: string | undefined
  readonly body: Buffer
}

/** A kept-alive socket the server had already closed: safe to retry an idempotent request once. */
class StaleSocketError extends Error {
  override readonly name = 'StaleSocketError'
  constructor(override readonly cause: Error) {
    super(cause.message)
  }
}

function isResetError(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ECONNRESET' || code === 'EPIPE' || error.message === 'socket hang up'
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

type CreateConnectionCallback = (error: Error | null, socket: Duplex) => void

/**
 * Connects directly, or through an HTTP CONNECT tunnel, with a connect timeout; the TLS part is https.Agent's own,
 * so its TLS session cache keeps working through the tunnel.
 */
class ApiServerHttpsAgent extends https.Agent {
  constructor(
    options: https.AgentOptions,
    private readonly proxy: ProxySetting | undefined,
    private readonly connectTimeoutMs: number,
    private readonly connectionKey: string,
  ) {
    super(options)
  }

  /** Connects now and parks the connection (see KubeClient.preconnect); a direct agent only. */
  preconnect(host: string, port: number): void {
    // The options Agent.createSocket would pass for a request to host:port (no SNI for an IP address).
    const options = { host, port, servername: net.isIP(host) ? '' : host, ...this.options }
    parkConnection(this.connectionKey, this.#connectDirect(options as http.ClientRequestArgs))
  }

  override createConnection(options: http.ClientRequestArgs, callback?: CreateConnectionCallback): Duplex | undefined {
    if (!this.proxy) return takeConnection(this.connectionKey) ?? this.#connectDirect(options)
    const host = String(options.host ?? options.hostname)
    connectThroughProxy(this.proxy, host, Number(options.port), {
      timeoutMs: this.connectTimeoutMs,
      keepAlive: true,
    }).then(
      (tunnel) => {
        let socket: tls.TLSSocket
        try {
          socket = super.createConnection({ ...options, socket: tunnel } as http.ClientRequestArgs) as tls.TLSSocket
        } catch (error) {
          tunnel.destroy()
          callback?.(error as Error, tunnel)
          return
        }
        callback?.(null, withConnectTimeout(socket, this.connectTimeoutMs, 'secureConnect'))
      },
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    )
    return undefined
  }

  #connectDirect(options: http.ClientRequestArgs): tls.TLSSocket {
    return withConnectTimeout(super.createConnection(options) as tls.TLSSocket, this.connectTimeoutMs, 'secureConnect')
  }
}

class ApiServerHttpAgent extends http.Agent {
  constructor(
    options: http.AgentOptions,
    private readonly proxy: ProxySetting | undefined,
    private readonly connectTimeoutMs: number,
  ) {
    super(options)
  }

  override createConnection(options: http.ClientRequestArgs, callback?: CreateConnectionCallback): Duplex | undefined {
    if (!this.proxy)
      return withConnectTimeout(super.createConnection(options) as net.Socket, this.connectTimeoutMs, 'connect')
    const host = String(options.host ?? options.hostname)
    connectThroughProxy(this.proxy, host, Number(options.port), {
      timeoutMs: this.connectTimeoutMs,
      keepAlive: true,
    }).then(
      (tunnel) => callback?.(null, tunnel),
      (error: Error) => callback?.(error, undefined as unknown as Duplex),
    )
    return undefined
  }
}

function withConnectTimeout<S extends net.Socket>(socket: S, timeoutMs: number, event: string): S {
  if (timeoutMs <= 0) return socket
  const timer = setTimeout(() => {
    socket.destroy(Object.assign(new Error('connection timed out'), { code: 'ETIMEDOUT' }))
  }, timeoutMs)
  const clear = () => clearTimeout(timer)
  socket.once(event, clear)
  socket.once('close', clear)
  return socket
}
