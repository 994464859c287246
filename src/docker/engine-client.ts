/**
 * The one adapter around docker-modem (the transport under dockerode): HTTP to the Docker Engine API over a unix
 * socket, TCP (with TLS and client certificates) or `ssh://` (OpenSSH running `docker system dial-stdio`, as the
 * docker CLI does, so that ssh's own known_hosts and agent apply), JSON in and out, and the connection hijack of
 * `POST /exec/{id}/start`. The API version is negotiated once, from `GET /version`, as the CLI does from `_ping`.
 * Failures become AccessErrors with the README's exit codes. Imported lazily: nothing here loads at startup.
 */
import { spawn } from 'node:child_process'
import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import type { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type DockerModem from 'docker-modem'
import { AccessError, ExitCode } from '../errors.js'
import type { Logger } from '../log.js'
import type { DockerEndpoint } from './endpoint.js'

/** The highest API version we speak (Engine 27); newer engines serve it, older ones are negotiated down to theirs. */
export const CLIENT_API_VERSION = '1.47'
/** The lowest API version we accept: what Engine 25+ still serves, and the ExecConfig fields we send exist. */
export const MIN_API_VERSION = '1.24'
/** ConsoleSize in ExecConfig and the exec start: API 1.42 (Engine 23). */
export const CONSOLE_SIZE_API_VERSION = '1.42'

export interface EngineVersion {
  Version?: string
  ApiVersion?: string
  MinAPIVersion?: string
  Os?: string
  Arch?: string
  KernelVersion?: string
  Platform?: { Name?: string }
}

export interface EngineClientOptions {
  logger: Logger
  /** Bounds every request (not the hijacked streams); 0: none. */
  requestTimeoutMs: number
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | object>
  body?: object
  timeoutMs?: number
}

/** An error the engine answered with (`{"message": …}` and an HTTP status). */
export class EngineApiError extends AccessError {
  override readonly name = 'EngineApiError'
  constructor(
    readonly httpStatus: number,
    readonly engineMessage: string,
    message: string,
    exitCode: number,
    hint?: string,
  ) {
    super(message, { exitCode, ...(hint ? { hint } : {}) })
  }
}

export class EngineClient {
  private constructor(
    private readonly modem: DockerModem,
    private readonly agent: HttpAgent,
    readonly endpoint: DockerEndpoint,
    readonly version: EngineVersion,
    /** The negotiated API version, e.g. `1.47`. */
    readonly apiVersion: string,
    private readonly options: EngineClientOptions,
  ) {}

  /** Connects (one `GET /version`), negotiates the API version and returns a client for every later request. */
  static async connect(
    endpoint: DockerEndpoint,
    options: EngineClientOptions & { connectTimeoutMs?: number },
  ): Promise<EngineClient> {
    const { default: Modem } = await import('docker-modem')
    const agent = createAgent(endpoint, options.logger)
    let modem: DockerModem
    try {
      modem = new Modem(modemOptions(endpoint, agent))
    } catch (error) {
      agent.destroy()
      // docker-modem reads DOCKER_HOST and DOCKER_CERT_PATH itself, and throws on what it cannot use.
      throw new AccessError(`cannot use the Docker host ${endpoint.host}: ${(error as Error).message}`, {
        exitCode: ExitCode.config,
        hint: 'check DOCKER_HOST, DOCKER_CERT_PATH and the Docker context',
      })
    }
    const started = performance.now()
    const probe = new EngineClient(modem, agent, endpoint, {}, '', options)
    let version: EngineVersion
    try {
      version = await probe.request<EngineVersion>('GET', '/version', {
        timeoutMs: options.connectTimeoutMs ?? options.requestTimeoutMs,
      })
    } catch (error) {
      agent.destroy()
      throw error
    }
    const server = version.ApiVersion ?? MIN_API_VERSION
    if (compareApiVersions(server, MIN_API_VERSION) < 0) {
      agent.destroy()
      throw new AccessError(`the Docker engine at ${endpoint.host} is too old (API ${server})`, {
        exitCode: ExitCode.unreachable,
        hint: `akm-access needs Docker Engine API ${MIN_API_VERSION} or later (Docker 1.12+)`,
      })
    }
    const apiVersion = compareApiVersions(server, CLIENT_API_VERSION) < 0 ? server : CLIENT_API_VERSION
    // docker-modem puts `/<version>` before every path from now on.
    ;(modem as unknown as { version: string }).version = `v${apiVersion}`
    options.logger.debug(
      `docker engine ${version.Version ?? '?'} at ${endpoint.host} (${endpoint.from}), API ${apiVersion}, ` +
        `answered in ${Math.round(performance.now() - started)} ms`,
    )
    return new EngineClient(modem, agent, endpoint, version, apiVersion, options)
  }

  /** True when the negotiated API version is at least `version`. */
  supports(version: string): boolean {
    return compareApiVersions(this.apiVersion, version) >= 0
  }

  /** One JSON request; resolves with the parsed answer (undefined for an empty one). */
  request<T>(method: 'GET' | 'POST' | 'HEAD', path: string, options: RequestOptions = {}): Promise<T> {
    const hasQuery = options.query !== undefined && Object.keys(options.query).length > 0
    return this.dial<T>(
      {
        path: hasQuery ? `${path}?` : path,
        method,
        options: { ...(hasQuery ? { _query: options.query } : {}), _body: options.body ?? {} },
        statusCodes: { 200: true, 201: true, 204: true, 304: true },
      },
      options.timeoutMs ?? this.options.requestTimeoutMs,
      `${method} ${path}`,
    )
  }

  /**
   * `POST path` with `Connection: Upgrade, Upgrade: tcp`: after the engine's `101 UPGRADED` the connection is the
   * exec's stream (raw with a TTY, stdcopy-multiplexed without), ours to read, write and half-close.
   */
  async hijack(path: string, body: object): Promise<Socket> {
    const result = await this.dial<unknown>(
      { path, method: 'POST', hijack: true, options: { _body: body }, statusCodes: { 101: true } },
      this.options.requestTimeoutMs,
      `POST ${path}`,
    )
    if (!(result instanceof Duplex)) {
      throw new AccessError(`the Docker engine at ${this.endpoint.host} did not hand over the exec stream`, {
        exitCode: ExitCode.unreachable,
        hint: 'a proxy between you and the engine may not support connection upgrades',
      })
    }
    return result as Socket
  }

  /** Closes the kept-alive connections, so that the process can exit at once. */
  close(): void {
    this.agent.destroy()
  }

  private dial<T>(options: DockerModem.DialOptions, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const controller = new AbortController()
      let timedOut = false
      const timer =
        timeoutMs > 0
          ? setTimeout(() => {
              timedOut = true
              controller.abort()
            }, timeoutMs)
          : undefined
      this.options.logger.debug(`docker ${what}`)
      this.modem.dial({ ...options, abortSignal: controller.signal }, (error, result) => {
        clearTimeout(timer)
        if (error) reject(this.failure(error, timedOut, timeoutMs))
        else resolve((Buffer.isBuffer(result) && result.length === 0 ? undefined : result) as T)
      })
    })
  }

  /** Maps what docker-modem and Node report to what the user can act on. */
  private failure(error: unknown, timedOut: boolean, timeoutMs: number): AccessError {
    const where = `the Docker engine at ${this.endpoint.host}`
    const from = this.endpoint.from === 'DOCKER_HOST' ? 'DOCKER_HOST' : this.endpoint.from
    if (timedOut) {
      return new AccessError(`${where} did not answer within ${timeoutMs / 1000}s`, {
        exitCode: ExitCode.unreachable,
        hint: 'is the Docker daemon running and responsive? (docker info)',
        cause: error,
      })
    }
    const raw = error as Error & { statusCode?: number; json?: unknown; code?: string }
    if (typeof raw.statusCode === 'number') {
      const body = raw.json as { message?: unknown } | undefined
      const message =
        body && typeof body === 'object' && typeof body.message === 'string'
          ? body.message
          : Buffer.isBuffer(raw.json)
            ? raw.json.toString('utf8').trim()
            : typeof raw.json === 'string'
              ? raw.json.trim()
              : `HTTP ${raw.statusCode}`
      return apiError(raw.statusCode, message, this.endpoint.host)
    }
    const code = raw.code ?? ''
    if (code === 'EACCES' || code === 'EPERM') {
      return new AccessError(`permission denied on the Docker socket ${socketOf(this.endpoint)}`, {
        exitCode: ExitCode.forbidden,
        hint: 'join the docker group (sudo usermod -aG docker $USER, then log in again), or use a Docker context you may use',
        cause: error,
      })
    }
    if (/CERT|SSL|TLS|certificate|self.signed|altname/i.test(`${code} ${raw.message}`)) {
      return new AccessError(`${where}: TLS failed: ${raw.message}`, {
        exitCode: ExitCode.tls,
        hint: 'check DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) or the TLS material of the Docker context',
        cause: error,
      })
    }
    const hint =
      code === 'ENOENT'
        ? `no Docker socket at ${socketOf(this.endpoint)}: is Docker running here? (the engine came from ${from})`
        : code === 'ECONNREFUSED'
          ? `nothing listens there: is the Docker daemon running? (the engine came from ${from})`
          : `check the network and the engine's address (from ${from}); docker info says more`
    return new AccessError(`cannot reach ${where}: ${raw.message}`, {
      exitCode: ExitCode.unreachable,
      hint,
      cause: error,
    })
  }
}

/** dockerd's statuses, as errdefs maps them, to the README's exit codes. */
function apiError(status: number, message: string, host: string): EngineApiError {
  if (status === 404) return new EngineApiError(status, message, message, ExitCode.podNotFound)
  if (status === 409) {
    return new EngineApiError(
      status,
      message,
      message,
      ExitCode.podNotReady,
      'start it with: docker compose up -d (or docker start CONTAINER)',
    )
  }
  if (status === 401) {
    return new EngineApiError(status, message, `the Docker engine at ${host} refused the credentials: ${message}`, 6)
  }
  if (status === 403) {
    return new EngineApiError(
      status,
      message,
      `the Docker engine at ${host} forbids it: ${message}`,
      ExitCode.forbidden,
    )
  }
  if (status === 400) return new EngineApiError(status, message, `the Docker engine refused the request: ${message}`, 1)
  if (status >= 502 && status <= 504) {
    return new EngineApiError(status, message, `the Docker engine at ${host} is unavailable: ${message}`, 4)
  }
  return new EngineApiError(status, message, `the Docker engine at ${host} failed: ${message}`, ExitCode.internal)
}

function socketOf(endpoint: DockerEndpoint): string {
  return endpoint.transport.kind === 'unix' ? endpoint.transport.socketPath : endpoint.host
}

/** docker-modem's constructor options; every key set, so that its own reading of DOCKER_HOST cannot interfere. */
function modemOptions(endpoint: DockerEndpoint, agent: HttpAgent): DockerModem.ConstructorOptions {
  const { transport } = endpoint
  const none = { username: undefined, ca: undefined, cert: undefined, key: undefined, sshOptions: {} }
  switch (transport.kind) {
    case 'unix':
      return { ...none, socketPath: transport.socketPath, host: undefined, port: undefined, protocol: 'http', agent }
    case 'tcp': {
      const tls = transport.tls
      return {
        ...none,
        host: transport.hostname,
        port: transport.port,
        protocol: tls ? 'https' : 'http',
        ...(tls?.ca ? { ca: tls.ca } : {}),
        ...(tls?.cert ? { cert: tls.cert } : {}),
        ...(tls?.key ? { key: tls.key } : {}),
        agent,
      }
    }
    case 'ssh':
      // Plain HTTP over the connection that `ssh … docker system dial-stdio` gives (see createAgent).
      return { ...none, host: 'docker', port: 80, protocol: 'http', agent }
  }
}

/** One keep-alive agent per run: every request reuses its connection; close() releases it. */
function createAgent(endpoint: DockerEndpoint, logger: Logger): HttpAgent {
  const { transport } = endpoint
  if (transport.kind === 'tcp' && transport.tls) {
    return new HttpsAgent({ keepAlive: true, rejectUnauthorized: transport.tls.verify }) as unknown as HttpAgent
  }
  if (transport.kind !== 'ssh') return new HttpAgent({ keepAlive: true })
  // Kept alive like the others: one ssh connection carries every request (the hijacked streams get their own).
  const agent = new HttpAgent({ keepAlive: true })
  // The docker CLI's connhelper: the engine's socket on the far host, through OpenSSH (its config, known_hosts, agent).
  ;(agent as unknown as { createConnection: () => Duplex }).createConnection = () => {
    const args = [
      '-o',
      'ConnectTimeout=30',
      '-T',
      ...(transport.user ? ['-l', transport.user] : []),
      ...(transport.port ? ['-p', String(transport.port)] : []),
      '--',
      transport.hostname,
      'docker',
      'system',
      'dial-stdio',
    ]
    logger.debug(`docker over ssh: ssh ${args.join(' ')}`)
    const child = spawn('ssh', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8')
    })
    const stream = Duplex.from({ readable: child.stdout, writable: child.stdin })
    child.once('error', (error) => stream.destroy(error))
    child.once('exit', (code) => {
      if (code !== 0 && !stream.destroyed) {
        stream.destroy(new Error(`ssh to ${transport.hostname} failed (${code}): ${stderr.trim() || 'no message'}`))
      }
    })
    stream.once('close', () => child.kill())
    // What Node's HTTP client may call on a socket.
    return Object.assign(stream, {
      setKeepAlive: () => stream,
      setNoDelay: () => stream,
      setTimeout: () => stream,
      ref: () => stream,
      unref: () => stream,
    })
  }
  return agent
}

export function compareApiVersions(a: string, b: string): number {
  const [aMajor = 0, aMinor = 0] = a.split('.').map(Number)
  const [bMajor = 0, bMinor = 0] = b.split('.').map(Number)
  return aMajor - bMajor || aMinor - bMinor
}
