/**
 * An emulation of the Docker Engine API, for the docker-compose flavour of the management container: HTTP/1.1 on a
 * unix socket (what `DOCKER_HOST=unix://…` and Docker contexts use) and optionally on loopback TCP (plain HTTP, as
 * `tcp://127.0.0.1:PORT` without TLS). It serves what the docker CLI and akm-access need, shaped like dockerd 27
 * (API 1.47) answers (moby api/swagger.yaml, api/server/router/*, daemon/exec.go, daemon/list.go):
 *   - `/_ping` (GET and HEAD) with the `Api-Version`, `Docker-Experimental`, `Ostype` headers the client negotiates
 *     its version from; every path also under `/v<version>/`, with dockerd's version checks;
 *   - `/version`, `/info` (enough for `docker version`, `docker info` and `docker inspect`'s object search);
 *   - `/containers/json` (`all`, `limit`, and the filters label, name, id, status, exited, ancestor, network,
 *     volume, expose, health, is-task), `/containers/{id}/json`, start/stop/restart;
 *   - exec: create, start with the connection hijack (`101 UPGRADED`, raw stream with a TTY, stdcopy-multiplexed
 *     stdout/stderr without; the client's half-close is the process's EOF), resize, inspect (exit codes);
 *   - errors as `{"message": …}` with dockerd's status codes and texts.
 * Containers are records that the scenario API (index.ts) creates and edits; a running one has a PodRuntime that
 * runs its processes (the same runtime as the Kubernetes sandbox's pods).
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { stat, unlink } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { constants as osConstants } from 'node:os'
import { isAbsolute, posix } from 'node:path'
import type { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import type { PodProcess, PodRuntime, StreamFaults } from '../contracts.js'

// ---- What the engine says about itself ----

export interface EngineVersion {
  /** The daemon's version (`docker version` → Server: Engine: Version). */
  version: string
  /** The highest API version it serves; the client downgrades to it after `_ping`. */
  apiVersion: string
  /** The lowest API version it accepts. */
  minApiVersion: string
  gitCommit: string
  goVersion: string
  buildTime: string
}

/** Docker Engine 27.5.1, the last release with API 1.47 (a v28 CLI negotiates down to it). */
export const DEFAULT_ENGINE_VERSION: EngineVersion = {
  version: '27.5.1',
  apiVersion: '1.47',
  minApiVersion: '1.24',
  gitCommit: '4c9b3b0',
  goVersion: 'go1.22.11',
  buildTime: '2025-01-22T13:41:17.000000000+00:00',
}

const MEDIA_RAW = 'application/vnd.docker.raw-stream'
const MEDIA_MULTIPLEXED = 'application/vnd.docker.multiplexed-stream'
/** stdcopy stream types: the first byte of each 8-byte frame header. */
const STREAM_STDOUT = 1
const STREAM_STDERR = 2
/** Go's zero time.Time, as dockerd prints unset timestamps. */
const ZERO_TIME = '0001-01-01T00:00:00Z'
/** dockerd waits this long for an exec to start before a resize fails (daemon/resize.go). */
const RESIZE_WAIT_MS = 10_000
/** Output queued for a slow client beyond this pauses the process's output (backpressure). */
const OUTPUT_HIGH_WATER = 256 * 1024

// ---- Containers ----

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead'
const CONTAINER_STATUSES: readonly ContainerStatus[] = [
  'created',
  'running',
  'paused',
  'restarting',
  'removing',
  'exited',
  'dead',
]

export interface ContainerState {
  status: ContainerStatus
  /** The host pid of the container's first process; 0 when not running. */
  pid: number
  exitCode: number
  startedAt: Date | undefined
  finishedAt: Date | undefined
}

export interface ContainerNetwork {
  /** The network's name (the key under NetworkSettings.Networks, and HostConfig.NetworkMode). */
  name: string
  networkId: string
  endpointId: string
  ipAddress: string
  ipPrefixLen: number
  gateway: string
  macAddress: string
  /** Compose gives the service name and the container name as aliases. */
  aliases: string[]
}

export interface ContainerMount {
  type: 'bind' | 'volume'
  /** Volume name (volumes only). */
  name?: string
  source: string
  destination: string
  rw: boolean
}

/** One container as the engine serves it. The scenario API owns it and changes `state` and `runtime`. */
export interface EngineContainer {
  /** 64 hex digits. */
  id: string
  /** Without the leading slash that the API puts on it. */
  name: string
  created: Date
  image: string
  imageId: string
  /** The container's main process. */
  path: string
  args: string[]
  config: {
    hostname: string
    /** The user processes (exec'd ones too) run as. */
    user: string
    workingDir: string
    env: string[]
    labels: Record<string, string>
    /** e.g. `22/tcp`. */
    exposedPorts: string[]
  }
  network: ContainerNetwork
  mounts: ContainerMount[]
  restartPolicy: string
  state: ContainerState
  /** The processes of a running container. */
  runtime: PodRuntime | undefined
  /**
   * Where a path of the container's filesystem is on this machine: the container sees this machine's root, except
   * /work. Used for the checks that runc makes before an exec (working directory, executable).
   */
  hostPath(containerPath: string): string
}

/** What the API's container lifecycle routes (`docker start/stop/restart`) call; the scenario API implements it. */
export interface ContainerLifecycle {
  start(container: EngineContainer): Promise<void>
  stop(container: EngineContainer): Promise<void>
  restart(container: EngineContainer): Promise<void>
}

// ---- Faults and the request log ----

export interface EngineFaults extends StreamFaults {
  /** Answer every exec create with this error (a daemon whose runtime fails, an authorization plugin that denies). */
  refuseExec?: { status: number; message: string }
  /** Answer the exec start's upgrade with this status instead of 101 (a proxy that won't hijack). */
  refuseUpgrade?: number
  /** Answer requests whose path (without the version prefix) matches with 500 and this fault's message. */
  failPaths?: RegExp
  /** Delay every non-streaming response by this long (a slow daemon). */
  responseDelayMs?: number
}

export interface RequestRecord {
  method: string
  /** The path as sent, with its version prefix if any. */
  url: string
  /** The path without the version prefix. */
  path: string
  /** The API version from the `/v1.xx` prefix, if any. */
  apiVersion: string | undefined
  query: Record<string, string>
  transport: 'unix' | 'tcp'
  userAgent: string | undefined
  upgrade: string | undefined
  /** The response status (101 for a hijacked stream); 0 until answered. */
  status: number
  /** The JSON body of the request, if it had one (e.g. an ExecConfig: Cmd, Tty, ConsoleSize, Env…). */
  body?: unknown
  at: number
}

// ---- Exec instances ----

interface ExecConfig {
  cmd: string[]
  env: string[]
  user: string
  workingDir: string
  tty: boolean
  openStdin: boolean
  openStdout: boolean
  openStderr: boolean
  privileged: boolean
  detachKeys: string
  /** [height, width], as the API carries it. */
  consoleSize: [number, number] | undefined
}

interface ExecInstance {
  id: string
  container: EngineContainer
  config: ExecConfig
  running: boolean
  exitCode: number | null
  pid: number
  process: PodProcess | undefined
  /** Resolves once the exec has started (or failed to). */
  started: Promise<void>
  markStarted: () => void
}

// ---- Errors ----

/** An API error: dockerd maps its errdefs kinds to these statuses and sends `{"message": …}`. */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

const notFound = (message: string) => new EngineError(404, message)
const conflict = (message: string) => new EngineError(409, message)
const invalidParameter = (message: string) => new EngineError(400, message)
const containerNotFound = (name: string) => notFound(`No such container: ${name}`)
const notRunning = (id: string) => conflict(`container ${id} is not running`)

// ---- The engine ----

export interface DockerEngineOptions {
  socketPath: string
  /** Also listen on a loopback TCP port (default false). */
  tcp?: boolean
  version?: EngineVersion
  lifecycle?: ContainerLifecycle
  /** The machine name that `/info` reports. */
  name?: string
}

export class DockerEngine {
  readonly requests: RequestRecord[] = []
  /** Faults in effect; tests change them while the engine runs. */
  readonly faults: EngineFaults = {}
  readonly version: EngineVersion
  private readonly containers = new Map<string, EngineContainer>()
  private readonly execs = new Map<string, ExecInstance>()
  private readonly servers: Server[] = []
  private readonly sockets = new Set<Socket>()
  /** Hijacked exec streams by container id, so that a test can cut them. */
  private readonly streams = new Map<string, Set<Socket>>()
  private tcpPort: number | undefined
  private closed = false

  constructor(private readonly options: DockerEngineOptions) {
    this.version = options.version ?? DEFAULT_ENGINE_VERSION
  }

  get socketPath(): string {
    return this.options.socketPath
  }

  /** `tcp://127.0.0.1:PORT` when listening on TCP. */
  get tcpHost(): string | undefined {
    return this.tcpPort === undefined ? undefined : `tcp://127.0.0.1:${this.tcpPort}`
  }

  async listen(): Promise<void> {
    // A unix socket path is limited to 107 bytes (sun_path); fail clearly rather than with EINVAL.
    if (Buffer.byteLength(this.options.socketPath) > 107) {
      throw new Error(`the socket path is too long for a unix socket: ${this.options.socketPath}`)
    }
    // A leftover socket file from a crashed run makes listen fail with EADDRINUSE.
    if (
      await stat(this.options.socketPath).then(
        (info) => info.isSocket(),
        () => false,
      )
    ) {
      await unlink(this.options.socketPath)
    }
    const unix = this.createServer('unix')
    await listenOn(unix, () => unix.listen(this.options.socketPath))
    if (this.options.tcp) {
      const tcp = this.createServer('tcp')
      await listenOn(tcp, () => tcp.listen(0, '127.0.0.1'))
      this.tcpPort = (tcp.address() as AddressInfo).port
    }
  }

  /** Closes the listeners and every connection (streams included) and removes the socket file. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    // Stop accepting first, so that no connection slips in after the others are cut.
    const closed = this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))
    for (const socket of this.sockets) socket.destroy()
    await Promise.all(closed)
    await unlink(this.options.socketPath).catch(() => {})
  }

  // ---- the containers the engine serves ----

  addContainer(container: EngineContainer): void {
    this.containers.set(container.id, container)
  }

  /** Removes a container (`docker rm`): it and its execs are gone from the API (404). */
  removeContainer(id: string): void {
    this.containers.delete(id)
    this.dropStreams(id)
    for (const [execId, exec] of this.execs) if (exec.container.id === id) this.execs.delete(execId)
  }

  listContainers(): EngineContainer[] {
    return [...this.containers.values()]
  }

  /** Cuts the hijacked exec streams of a container (all containers if no id), as a daemon restart would. */
  dropStreams(containerId?: string): void {
    for (const [id, set] of this.streams) {
      if (containerId !== undefined && id !== containerId) continue
      for (const socket of set) socket.destroy()
    }
  }

  streamCount(containerId?: string): number {
    let count = 0
    for (const [id, set] of this.streams) if (containerId === undefined || id === containerId) count += set.size
    return count
  }

  /** The exec instances, as `GET /exec/{id}/json` would show them. */
  execInspections(): Record<string, unknown>[] {
    return [...this.execs.values()].map((exec) => execInspect(exec))
  }

  // ---- HTTP ----

  private createServer(transport: 'unix' | 'tcp'): Server {
    // keepAliveTimeout 0: dockerd never closes an idle keep-alive connection, and the Go client reuses them (a POST
    // on a connection that the server is closing fails instead of being retried).
    const server = createServer({ keepAliveTimeout: 0, requestTimeout: 0 }, (req, res) => {
      void this.handleRequest(req, res, transport)
    })
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      void this.handleUpgrade(req, socket, head, transport)
    })
    server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
    this.servers.push(server)
    return server
  }

  /** The headers dockerd's middlewares put on every response. */
  private commonHeaders(): Record<string, string> {
    return {
      'Api-Version': this.version.apiVersion,
      'Docker-Experimental': 'false',
      Ostype: 'linux',
      Server: `Docker/${this.version.version} (linux)`,
    }
  }

  private record(req: IncomingMessage, transport: 'unix' | 'tcp'): { record: RequestRecord; route: ParsedUrl } {
    const route = parseUrl(req.url ?? '/')
    const record: RequestRecord = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      path: route.path,
      apiVersion: route.apiVersion,
      query: Object.fromEntries(route.query),
      transport,
      userAgent: req.headers['user-agent'],
      upgrade: req.headers.upgrade,
      status: 0,
      at: Date.now(),
    }
    this.requests.push(record)
    return { record, route }
  }

  /** dockerd's version middleware: the path's version must be within [min, max] (unversioned means the max). */
  private checkVersion(route: ParsedUrl): string {
    const version = route.apiVersion ?? this.version.apiVersion
    if (compareVersions(version, this.version.minApiVersion) < 0) {
      throw invalidParameter(
        `client version ${version} is too old. Minimum supported API version is ${this.version.minApiVersion}, please upgrade your client to a newer version`,
      )
    }
    if (compareVersions(version, this.version.apiVersion) > 0) {
      throw invalidParameter(
        `client version ${version} is too new. Maximum supported API version is ${this.version.apiVersion}`,
      )
    }
    return version
  }

  private async handleRequest(req: IncomingMessage, res: ServerResponse, transport: 'unix' | 'tcp'): Promise<void> {
    const { record, route } = this.record(req, transport)
    res.on('finish', () => {
      record.status = res.statusCode
    })
    for (const [name, value] of Object.entries(this.commonHeaders())) res.setHeader(name, value)
    try {
      const body = await readBody(req)
      recordBody(record, body)
      if (this.faults.responseDelayMs) await sleep(this.faults.responseDelayMs)
      if (this.faults.failPaths?.test(route.path)) throw new EngineError(500, 'sandbox fault injected')
      const version = this.checkVersion(route)
      await this.route(req.method ?? 'GET', route, version, body, req, res)
    } catch (error) {
      sendError(res, error)
    }
  }

  /** The routes, in dockerd's terms: method, path pattern (captures are the path variables), handler. */
  private readonly routes: Route[] = [
    route('GET', /^\/_ping$/, ({ method, res }) => this.ping(method, res)),
    route('GET', /^\/version$/, ({ res }) => sendJson(res, 200, this.versionInfo())),
    route('GET', /^\/info$/, ({ res }) => sendJson(res, 200, this.info())),
    route('GET', /^\/containers\/json$/, ({ res, query }) => sendJson(res, 200, this.list(query))),
    route('GET', /^\/containers\/([^/]+)\/json$/, ({ res, params: [name] }) =>
      sendJson(res, 200, containerInspect(this.findContainer(name), this.execIds(name))),
    ),
    route('POST', /^\/containers\/([^/]+)\/exec$/, ({ res, req, body, version, params: [name] }) => {
      const config = parseExecConfig(readJson(req, body), version)
      sendJson(res, 201, { Id: this.createExec(name, config) })
    }),
    route('POST', /^\/containers\/([^/]+)\/(start|stop|restart)$/, ({ res, params: [name, action] }) =>
      this.lifecycle(name, action as 'start' | 'stop' | 'restart', res),
    ),
    route('POST', /^\/exec\/([^/]+)\/start$/, ({ res, req, body, params: [id] }) => {
      const options = parseExecStartOptions(readJson(req, body))
      const exec = this.activeExec(id)
      // Only a detached start can be served without the hijack: node's HTTP server owns the connection otherwise.
      if (!options.detach) throw invalidParameter('sandbox: an attached exec start needs the `Upgrade: tcp` hijack')
      this.launch(exec, options.consoleSize, undefined)
      sendEmpty(res, 200)
    }),
    route('POST', /^\/exec\/([^/]+)\/resize$/, async ({ res, query, params: [id] }) => {
      await this.resizeExec(id, query)
      sendEmpty(res, 200)
    }),
    route('GET', /^\/exec\/([^/]+)\/json$/, ({ res, params: [id] }) => {
      const exec = this.execs.get(id)
      if (!exec || !this.containers.has(exec.container.id)) throw notFound(`No such exec instance: ${id}`)
      sendJson(res, 200, execInspect(exec))
    }),
    // The other objects `docker inspect` looks through when a name is not a container; the engine has none.
    route('GET', /^\/images\/(.+)\/json$/, ({ params: [name] }) => {
      throw notFound(`No such image: ${name}`)
    }),
    route('GET', /^\/networks\/([^/]+)$/, ({ params: [id] }) => {
      throw notFound(`network ${id} not found`)
    }),
    route('GET', /^\/volumes\/([^/]+)$/, ({ params: [name] }) => {
      throw notFound(`get ${name}: no such volume`)
    }),
    route('GET', /^\/plugins\/(.+)\/json$/, ({ params: [name] }) => {
      throw notFound(`plugin "${name}" not found`)
    }),
  ]

  private async route(
    method: string,
    url: ParsedUrl,
    version: string,
    body: Buffer,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    // HEAD is served by the GET routes (node leaves the body out).
    const routeMethod = method === 'HEAD' ? 'GET' : method
    for (const candidate of this.routes) {
      if (candidate.method !== routeMethod) continue
      const match = url.path.match(candidate.pattern)
      if (!match) continue
      const params = match.slice(1).map((param) => param ?? '') as RouteContext['params']
      await candidate.handle({ method, res, req, body, version, query: url.query, params })
      return
    }
    // gorilla/mux in dockerd answers unknown paths and wrong methods alike.
    throw notFound('page not found')
  }

  private ping(method: string, res: ServerResponse): void {
    const headers = {
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      Pragma: 'no-cache',
      'Builder-Version': '2',
      Swarm: 'inactive',
      'Content-Type': 'text/plain; charset=utf-8',
    }
    if (method === 'HEAD') {
      res.writeHead(200, { ...headers, 'Content-Length': '0' })
      res.end()
      return
    }
    res.writeHead(200, { ...headers, 'Content-Length': '2' })
    res.end('OK')
  }

  private versionInfo(): Record<string, unknown> {
    const v = this.version
    const arch = goArch()
    const kernelVersion = kernelRelease()
    return {
      Platform: { Name: 'Docker Engine - Community' },
      Components: [
        {
          Name: 'Engine',
          Version: v.version,
          Details: {
            ApiVersion: v.apiVersion,
            Arch: arch,
            BuildTime: v.buildTime,
            Experimental: 'false',
            GitCommit: v.gitCommit,
            GoVersion: v.goVersion,
            KernelVersion: kernelVersion,
            MinAPIVersion: v.minApiVersion,
            Os: 'linux',
          },
        },
        { Name: 'containerd', Version: '1.7.25', Details: { GitCommit: 'bcc810d6b9066471b0b6fa75f557a15a1cbf31bb' } },
        { Name: 'runc', Version: '1.2.4', Details: { GitCommit: 'v1.2.4-0-g6c52b3f' } },
        { Name: 'docker-init', Version: '0.19.0', Details: { GitCommit: 'de40ad0' } },
      ],
      Version: v.version,
      ApiVersion: v.apiVersion,
      MinAPIVersion: v.minApiVersion,
      GitCommit: v.gitCommit,
      GoVersion: v.goVersion,
      Os: 'linux',
      Arch: arch,
      KernelVersion: kernelVersion,
      BuildTime: v.buildTime,
    }
  }

  private info(): Record<string, unknown> {
    const containers = this.listContainers()
    const running = containers.filter((c) => c.state.status === 'running').length
    const paused = containers.filter((c) => c.state.status === 'paused').length
    return {
      ID: 'akm-sandbox-engine',
      Containers: containers.length,
      ContainersRunning: running,
      ContainersPaused: paused,
      ContainersStopped: containers.length - running - paused,
      Images: 1,
      Driver: 'overlay2',
      DockerRootDir: '/var/lib/docker',
      KernelVersion: kernelRelease(),
      OperatingSystem: 'akm-access sandbox (Docker Engine emulation)',
      OSType: 'linux',
      Architecture: process.arch === 'x64' ? 'x86_64' : process.arch,
      NCPU: 1,
      MemTotal: 0,
      Name: this.options.name ?? 'akm-sandbox',
      ServerVersion: this.version.version,
      Labels: [],
      ExperimentalBuild: false,
      DefaultRuntime: 'runc',
      Runtimes: { runc: { path: 'runc' } },
      Swarm: {
        NodeID: '',
        NodeAddr: '',
        LocalNodeState: 'inactive',
        ControlAvailable: false,
        Error: '',
        RemoteManagers: null,
      },
      LiveRestoreEnabled: false,
      SecurityOptions: ['name=seccomp,profile=builtin'],
      Warnings: null,
    }
  }

  // ---- containers ----

  /** dockerd's GetContainer: the full id, then the name (with or without its slash), then a unique id prefix. */
  private findContainer(reference: string): EngineContainer {
    const byId = this.containers.get(reference)
    if (byId) return byId
    const name = reference.startsWith('/') ? reference.slice(1) : reference
    for (const container of this.containers.values()) if (container.name === name) return container
    if (/^[0-9a-f]+$/.test(reference)) {
      const matches = [...this.containers.values()].filter((c) => c.id.startsWith(reference))
      if (matches.length > 1) throw invalidParameter(`multiple IDs found with provided prefix: ${reference}`)
      if (matches[0]) return matches[0]
    }
    throw containerNotFound(reference)
  }

  /** Exec ids that belong to the container's current run: created or running, not finished (dockerd drops those). */
  private execIds(reference: string): string[] {
    const container = this.findContainer(reference)
    return [...this.execs.values()].filter((e) => e.container === container && e.exitCode === null).map((e) => e.id)
  }

  /** `GET /containers/json`, with dockerd's filters (daemon/list.go) as far as one compose container needs them. */
  private list(query: URLSearchParams): Record<string, unknown>[] {
    const filters = parseFilters(query.get('filters'))
    validateFilters(filters, [...PS_FILTERS])
    for (const key of ['before', 'since', 'isolation', 'publish'] as const) {
      if (filters.has(key)) throw new EngineError(501, `sandbox: the '${key}' filter is not emulated`)
    }
    let all = boolValue(query.get('all'))
    for (const status of filters.get('status') ?? []) {
      if (!CONTAINER_STATUSES.includes(status as ContainerStatus)) {
        throw invalidParameter(`invalid filter 'status=${status}'`)
      }
      // A status filter implies all: `--filter status=exited` finds stopped containers.
      all = true
    }
    const exitCodes = (filters.get('exited') ?? []).map((code) => {
      if (!/^-?\d+$/.test(code)) throw invalidParameter(`invalid filter 'exited=${code}'`)
      return Number(code)
    })
    for (const health of filters.get('health') ?? []) {
      if (!['starting', 'healthy', 'unhealthy', 'none'].includes(health)) {
        throw invalidParameter(`unrecognized filter value for health: ${health}`)
      }
    }
    // No health check in the image (its health is "none"), and a compose container is not a swarm task.
    const healthKept = !filters.has('health') || (filters.get('health') ?? []).includes('none')
    const taskKept = !(filters.get('is-task') ?? []).some((value) => boolValue(value))
    if (!healthKept || !taskKept) return []
    const limit = Number(query.get('limit') ?? '-1')
    const containers = this.listContainers()
      .filter((c) => all || limit > 0 || c.state.status === 'running')
      .filter((c) => filterMatch(filters, 'name', c.name) || filterMatch(filters, 'name', `/${c.name}`))
      .filter((c) => filterMatch(filters, 'id', c.id))
      .filter((c) => filterMatchKeyValues(filters, 'label', c.config.labels))
      .filter((c) => filterMatch(filters, 'status', c.state.status))
      .filter((c) => exitCodes.length === 0 || (c.state.status === 'exited' && exitCodes.includes(c.state.exitCode)))
      .filter((c) => anyValue(filters, 'ancestor', (value) => isAncestor(value, c)))
      .filter((c) =>
        anyValue(filters, 'network', (value) => value === c.network.name || c.network.networkId.startsWith(value)),
      )
      .filter((c) =>
        anyValue(filters, 'volume', (value) =>
          c.mounts.some((m) => value === m.destination || value === m.source || value === m.name),
        ),
      )
      .filter((c) =>
        anyValue(filters, 'expose', (value) =>
          c.config.exposedPorts.some((port) => port === value || port === `${value}/tcp`),
        ),
      )
      // Newest first, as dockerd lists them.
      .sort((a, b) => b.created.getTime() - a.created.getTime())
    return (limit > 0 ? containers.slice(0, limit) : containers).map((c) => containerSummary(c))
  }

  private async lifecycle(reference: string, action: 'start' | 'stop' | 'restart', res: ServerResponse) {
    const container = this.findContainer(reference)
    const lifecycle = this.options.lifecycle
    if (!lifecycle) throw new EngineError(501, `sandbox: ${action} is not emulated here`)
    const running = container.state.status === 'running'
    // 304 Not Modified: dockerd's answer to starting a started container or stopping a stopped one.
    if ((action === 'start' && running) || (action === 'stop' && !running)) {
      res.writeHead(304)
      res.end()
      return
    }
    await lifecycle[action](container)
    res.writeHead(204)
    res.end()
  }

  // ---- exec ----

  private createExec(reference: string, config: ExecConfig): string {
    const container = this.findContainer(reference)
    if (container.state.status !== 'running' || !container.runtime) throw notRunning(container.id)
    if (this.faults.refuseExec) throw new EngineError(this.faults.refuseExec.status, this.faults.refuseExec.message)
    const user = config.user || container.config.user
    checkUser(user, container)
    const id = randomBytes(32).toString('hex')
    let markStarted!: () => void
    const started = new Promise<void>((resolve) => {
      markStarted = resolve
    })
    const exec: ExecInstance = {
      id,
      container,
      config: { ...config, user, workingDir: config.workingDir || container.config.workingDir },
      running: false,
      exitCode: null,
      pid: 0,
      process: undefined,
      started,
      markStarted,
    }
    this.execs.set(id, exec)
    return id
  }

  /** dockerd's getExecConfig: the exec must exist, and its container exist and run. */
  private activeExec(id: string): ExecInstance {
    const exec = this.execs.get(id)
    if (!exec) throw notFound(`No such exec instance: ${id}`)
    const container = this.containers.get(exec.container.id)
    if (!container) throw containerNotFound(id)
    if (container.state.status !== 'running' || !container.runtime) throw notRunning(container.id)
    return exec
  }

  private async resizeExec(id: string, query: URLSearchParams): Promise<void> {
    const height = uint32Query(query, 'h', 'height')
    const width = uint32Query(query, 'w', 'width')
    const exec = this.activeExec(id)
    const timedOut = Symbol('timeout')
    const outcome = await Promise.race([exec.started, sleep(RESIZE_WAIT_MS, timedOut)])
    if (outcome === timedOut) throw new EngineError(500, 'timeout waiting for exec session ready')
    if (!exec.process) throw invalidParameter('exec process is not started')
    if (height > 0 && width > 0) exec.process.resize(width, height)
  }

  /** Serves `POST /exec/{id}/start` with `Upgrade: tcp`: the connection becomes the exec's stream. */
  private async handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, transport: 'unix' | 'tcp') {
    // A client that vanishes mid-stream must not crash the sandbox.
    socket.on('error', () => {})
    const { record, route } = this.record(req, transport)
    const respond = (status: number, body?: unknown) => {
      record.status = status
      writeRawResponse(socket, status, this.commonHeaders(), body)
    }
    let upgraded = false
    try {
      const version = this.checkVersion(route)
      const match = req.method === 'POST' ? route.path.match(/^\/exec\/([^/]+)\/start$/) : null
      if (!match) throw notFound('page not found')
      const { body, rest } = await readUpgradeBody(req, socket, head)
      recordBody(record, body)
      const options = parseExecStartOptions(readJson(req, body))
      const exec = this.activeExec(match[1]!)
      if (this.faults.refuseUpgrade) {
        throw new EngineError(this.faults.refuseUpgrade, 'sandbox fault: the upgrade was refused')
      }
      if (options.detach) {
        this.launch(exec, options.consoleSize, undefined)
        respond(200)
        return
      }
      // Before 1.42 dockerd called every stream raw (the client then always demultiplexed without a TTY).
      const multiplexed = !exec.config.tty
      const mediaType = multiplexed && compareVersions(version, '1.42') >= 0 ? MEDIA_MULTIPLEXED : MEDIA_RAW
      record.status = 101
      upgraded = true
      const headers = { ...this.commonHeaders() }
      socket.write(
        `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${mediaType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n${Object.entries(
          headers,
        )
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('')}\r\n`,
      )
      this.track(exec.container.id, socket)
      const stream = new HijackedStream(socket, multiplexed, this.faults)
      // dockerd refuses a second start after the hijack, in the stream (router/container/exec.go, daemon/exec.go).
      if (exec.exitCode !== null || exec.running) {
        const state = exec.exitCode !== null ? 'has already run' : 'is already running'
        stream.write(STREAM_STDOUT, Buffer.from(`Error: Exec command ${exec.id} ${state}\r\n`))
        await stream.finish()
        return
      }
      this.launch(exec, options.consoleSize, { stream, rest })
    } catch (error) {
      // After the 101 the connection is the exec's stream: an HTTP error can no longer be sent on it.
      if (upgraded) {
        socket.destroy()
        return
      }
      const status = error instanceof EngineError ? error.status : 500
      respond(status, { message: error instanceof Error ? error.message : String(error) })
    }
  }

  private track(containerId: string, socket: Socket): void {
    let set = this.streams.get(containerId)
    if (!set) {
      set = new Set()
      this.streams.set(containerId, set)
    }
    const streams = set
    streams.add(socket)
    socket.once('close', () => streams.delete(socket))
  }

  /**
   * Starts the exec's process and connects it to the client's stream (none when detached). A process that runc
   * could not start gives dockerd's message in the stream and exit code 127 or 126, as `setExitCodeFromError` does.
   */
  private launch(
    exec: ExecInstance,
    consoleSize: [number, number] | undefined,
    attach: { stream: HijackedStream; rest: Buffer } | undefined,
  ): void {
    const { config, container } = exec
    exec.running = true
    // A start that fails: dockerd writes the error into the stream (after the 101) and the exit code is set.
    const fail = (message: string, exitCode: number) => {
      exec.running = false
      exec.exitCode = exitCode
      exec.markStarted()
      if (attach) {
        attach.stream.write(STREAM_STDOUT, Buffer.from(`${message}\r\n`))
        void attach.stream.finish()
      }
    }
    const env = execEnvironment(container, config)
    const startError = runcPreflight(container, config, env)
    if (startError) {
      fail(startError.message, startError.exitCode)
      return
    }
    // The pod runtime starts every process as the container's user in /work with PATH, HOME, HOSTNAME (and TERM
    // with a TTY); `env` adds the container's and the exec's variables and moves to the working directory.
    const argv = ['env', '-C', config.workingDir, ...envArguments(env), ...config.cmd]
    const size = consoleSize ?? config.consoleSize
    let started: PodProcess
    try {
      if (!container.runtime) throw notRunning(container.id)
      started = container.runtime.exec(argv, {
        tty: config.tty,
        ...(size ? { rows: size[0] || 24, cols: size[1] || 80 } : {}),
      })
    } catch (error) {
      // 126 is dockerd's exit code for an exec that failed to start for another reason.
      fail(error instanceof Error ? error.message : String(error), 126)
      return
    }
    exec.process = started
    exec.pid = started.pid
    exec.markStarted()
    const stdin = started.stdin
    // Without AttachStdin the process's stdin is empty (dockerd gives it a closed pipe).
    if (!config.openStdin || !attach) {
      if (!config.tty) stdin.end()
    }
    const outputs: [Readable, number][] = []
    if (config.openStdout) outputs.push([started.stdout, STREAM_STDOUT])
    else started.stdout.resume()
    if (started.stderr) {
      if (config.openStderr) outputs.push([started.stderr, STREAM_STDERR])
      else started.stderr.resume()
    }
    for (const [output, type] of outputs) {
      if (attach) attach.stream.pipeFrom(output, type)
      else output.resume()
    }
    if (attach) {
      const { stream, rest } = attach
      if (config.openStdin) stream.pipeTo(stdin, rest, !config.tty)
      else stream.discardInput()
      // A client gone before the process ends leaves it running, as with dockerd; its stdin ends (CloseStdin).
      stream.onClientGone(() => {
        if (config.openStdin && !config.tty) stdin.end()
      })
    }
    started.exited.then(
      ({ code, signal }) => this.finishExec(exec, exitCodeOf(code, signal), attach?.stream),
      () => this.finishExec(exec, 126, attach?.stream),
    )
  }

  /** The exit code is recorded before the stream ends: the CLI asks for it as soon as it sees the end. */
  private finishExec(exec: ExecInstance, exitCode: number, stream: HijackedStream | undefined): void {
    exec.exitCode = exitCode
    exec.running = false
    if (stream) void stream.finish()
  }
}

interface RouteContext {
  method: string
  req: IncomingMessage
  res: ServerResponse
  body: Buffer
  version: string
  query: URLSearchParams
  /** The pattern's captures; every route's pattern has as many as its handler reads. */
  params: string[] & [string, string]
}

interface Route {
  method: 'GET' | 'POST'
  pattern: RegExp
  handle(context: RouteContext): void | Promise<void>
}

function route(method: Route['method'], pattern: RegExp, handle: Route['handle']): Route {
  return { method, pattern, handle }
}

// ---- The hijacked stream ----

/**
 * The client's side of an exec after the hijack: output frames (stdcopy-multiplexed, or raw with a TTY) queued with
 * backpressure and the stream faults; input bytes to the process, the client's half-close as EOF.
 */
class HijackedStream {
  private readonly queue: Buffer[] = []
  private queued = 0
  private flushing: Promise<void> | undefined
  private readonly sources = new Set<Readable>()
  private sent = 0
  private gone = false
  private readonly goneCallbacks: (() => void)[] = []

  constructor(
    private readonly socket: Socket,
    private readonly multiplexed: boolean,
    private readonly faults: EngineFaults,
  ) {
    if (faults.idleTimeoutMs) socket.setTimeout(faults.idleTimeoutMs, () => socket.destroy())
    socket.once('close', () => this.markGone())
  }

  /** Sends the process's output as it comes; pauses it while the client is behind. */
  pipeFrom(output: Readable, type: number): void {
    this.sources.add(output)
    output.on('data', (chunk: Buffer) => this.write(type, chunk))
  }

  /** Feeds the client's bytes to the process; the client's half-close ends its input when `endOnEof`. */
  pipeTo(stdin: NodeJS.WritableStream, rest: Buffer, endOnEof: boolean): void {
    if (rest.length > 0) stdin.write(rest)
    this.socket.on('data', (chunk: Buffer) => {
      if (!stdin.write(chunk)) {
        this.socket.pause()
        stdin.once('drain', () => this.socket.resume())
      }
    })
    this.socket.once('end', () => {
      if (endOnEof) stdin.end()
    })
    this.socket.resume()
  }

  discardInput(): void {
    this.socket.on('data', () => {})
    this.socket.resume()
  }

  onClientGone(callback: () => void): void {
    if (this.gone) callback()
    else this.goneCallbacks.push(callback)
  }

  write(type: number, payload: Buffer): void {
    if (this.gone || payload.length === 0) return
    const frame = this.multiplexed ? Buffer.concat([stdcopyHeader(type, payload.length), payload]) : payload
    this.queue.push(frame)
    this.queued += frame.length
    if (this.queued > OUTPUT_HIGH_WATER) for (const source of this.sources) source.pause()
    this.flushing ??= this.flush().finally(() => {
      this.flushing = undefined
    })
  }

  /** Sends what is queued, then ends the connection (the end of output is the client's cue to ask for the exit code). */
  async finish(): Promise<void> {
    while (this.flushing) await this.flushing
    if (!this.gone) this.socket.end()
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const frame = this.queue.shift()!
      this.queued -= frame.length
      if (this.queued <= OUTPUT_HIGH_WATER / 2) for (const source of this.sources) source.resume()
      if (this.faults.delayMs) await sleep(this.faults.delayMs)
      if (this.gone) continue
      const limit = this.faults.dropAfterBytes
      if (limit !== undefined && this.sent + frame.length >= limit) {
        // The connection drops once `limit` bytes of the stream have gone out (a proxy or network failure).
        const part = frame.subarray(0, Math.max(0, limit - this.sent))
        this.sent += part.length
        this.markGone()
        this.socket.write(part, () => this.socket.destroy())
        continue
      }
      this.sent += frame.length
      if (!this.socket.write(frame)) await this.drained()
    }
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done)
        this.socket.off('close', done)
        resolve()
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  private markGone(): void {
    if (this.gone) return
    this.gone = true
    this.queue.length = 0
    this.queued = 0
    // The process keeps running; what it writes now is dropped, so that it never blocks on a full pipe.
    for (const source of this.sources) source.resume()
    for (const callback of this.goneCallbacks.splice(0)) callback()
  }
}

/** stdcopy's frame header: [stream type, 0, 0, 0, big-endian uint32 payload size]. */
function stdcopyHeader(type: number, size: number): Buffer {
  const header = Buffer.alloc(8)
  header[0] = type
  header.writeUInt32BE(size, 4)
  return header
}

// ---- exec helpers ----

function parseExecConfig(body: Record<string, unknown>, version: string): ExecConfig {
  const cmd = stringArray(body.Cmd)
  if (cmd.length === 0) throw invalidParameter('No exec command specified')
  const size = body.ConsoleSize
  const consoleSize =
    Array.isArray(size) && size.length === 2 && compareVersions(version, '1.42') >= 0
      ? ([Number(size[0]), Number(size[1])] as [number, number])
      : undefined
  return {
    cmd,
    env: stringArray(body.Env),
    user: typeof body.User === 'string' ? body.User : '',
    workingDir: typeof body.WorkingDir === 'string' ? body.WorkingDir : '',
    tty: body.Tty === true,
    openStdin: body.AttachStdin === true,
    openStdout: body.AttachStdout === true,
    openStderr: body.AttachStderr === true,
    privileged: body.Privileged === true,
    detachKeys: typeof body.DetachKeys === 'string' ? body.DetachKeys : '',
    consoleSize,
  }
}

function parseExecStartOptions(body: Record<string, unknown>): {
  detach: boolean
  consoleSize: [number, number] | undefined
} {
  const size = body.ConsoleSize
  return {
    detach: body.Detach === true,
    // No console without a TTY (router/container/exec.go).
    consoleSize:
      body.Tty === true && Array.isArray(size) && size.length === 2 ? [Number(size[0]), Number(size[1])] : undefined,
  }
}

/**
 * The pod runtime runs processes as the container's user only. dockerd looks the user up in the container's
 * /etc/passwd at create time; a user that exists but is not the container's is beyond the emulation.
 */
function checkUser(user: string, container: EngineContainer): void {
  const [name = ''] = user.split(':')
  if (name === '' || name === container.config.user) return
  if (/^\d+$/.test(name) || name === 'root') {
    throw new EngineError(501, `sandbox: exec as user ${user} is not emulated (only ${container.config.user})`)
  }
  throw invalidParameter(`unable to find user ${name}: no matching entries in passwd file`)
}

/**
 * The exec's environment as dockerd builds it (CreateDaemonEnvironment, then ReplaceOrAppendEnvValues): PATH,
 * HOSTNAME and TERM (with a TTY), overridden or extended by the container's Env, then the exec's. An exec variable
 * without `=` unsets it.
 */
function execEnvironment(container: EngineContainer, config: ExecConfig): string[] {
  const env = new Map<string, string | undefined>()
  env.set('PATH', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  env.set('HOSTNAME', `HOSTNAME=${container.config.hostname}`)
  if (config.tty) env.set('TERM', 'TERM=xterm')
  for (const entry of [...container.config.env, ...config.env]) {
    const name = entry.split('=')[0]!
    env.set(name, entry.includes('=') ? entry : undefined)
  }
  return [...env.entries()].map(([name, entry]) => entry ?? `-${name}`)
}

/** `env` arguments: `-u NAME` for unset variables (written `-NAME` above), then `--` and the assignments. */
function envArguments(env: string[]): string[] {
  const unset = env.filter((entry) => entry.startsWith('-')).flatMap((entry) => ['-u', entry.slice(1)])
  return [...unset, '--', ...env.filter((entry) => !entry.startsWith('-'))]
}

/**
 * What runc checks before it starts an exec'd process: the working directory (chdir) and the executable
 * (exec.LookPath on the process's PATH). Returns dockerd's message and exit code when it would fail.
 */
function runcPreflight(
  container: EngineContainer,
  config: ExecConfig,
  env: string[],
): { message: string; exitCode: number } | undefined {
  const prefix = 'OCI runtime exec failed: exec failed: unable to start container process: '
  const fail = (detail: string) => ({
    message: `${prefix}${detail}: unknown`,
    // setExitCodeFromError: "no such file or directory" / "not found" -> 127, "permission denied" -> 126.
    exitCode: /permission denied/.test(detail) ? 126 : 127,
  })
  const cwd = config.workingDir
  if (!isAbsolute(cwd) || !isDirectory(container.hostPath(cwd))) {
    return fail(`chdir to cwd (${JSON.stringify(cwd)}) set in config.json failed: no such file or directory`)
  }
  const file = config.cmd[0]!
  if (file.includes('/')) {
    const path = posix.resolve(cwd, file)
    const kind = fileKind(container.hostPath(path))
    if (kind === 'missing') return fail(`exec: ${JSON.stringify(file)}: stat ${file}: no such file or directory`)
    if (kind !== 'executable') return fail(`exec: ${JSON.stringify(file)}: permission denied`)
    return undefined
  }
  const pathVariable = env.find((entry) => entry.startsWith('PATH='))?.slice('PATH='.length) ?? ''
  for (const dir of pathVariable.split(':')) {
    if (!dir) continue
    if (fileKind(container.hostPath(posix.join(dir, file))) === 'executable') return undefined
  }
  return fail(`exec: ${JSON.stringify(file)}: executable file not found in $PATH`)
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

function fileKind(path: string): 'missing' | 'executable' | 'other' {
  try {
    const info = statSync(path)
    return !info.isDirectory() && (info.mode & 0o111) !== 0 ? 'executable' : 'other'
  } catch {
    return 'missing'
  }
}

/** A process killed by a signal exits with 128 + its number, as the shell and containerd report it. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code
  const number = signal ? osConstants.signals[signal] : undefined
  return number === undefined ? 255 : 128 + number
}

function execInspect(exec: ExecInstance): Record<string, unknown> {
  const { config } = exec
  return {
    ID: exec.id,
    Running: exec.running,
    // null until the process has ended; the CLI reads a null as 0.
    ExitCode: exec.exitCode,
    ProcessConfig: {
      tty: config.tty,
      entrypoint: config.cmd[0],
      arguments: config.cmd.slice(1),
      privileged: config.privileged,
      user: config.user,
    },
    OpenStdin: config.openStdin,
    OpenStderr: config.openStderr,
    OpenStdout: config.openStdout,
    CanRemove: false,
    ContainerID: exec.container.id,
    DetachKeys: config.detachKeys,
    Pid: exec.pid,
  }
}

// ---- container JSON ----

function isoTime(date: Date | undefined): string {
  return date ? date.toISOString() : ZERO_TIME
}

/** The human status `docker ps` shows (container/state.go String()). */
export function containerStatusText(state: ContainerState, now = Date.now()): string {
  switch (state.status) {
    case 'running':
      return `Up ${humanDuration(now - (state.startedAt?.getTime() ?? now))}`
    case 'paused':
      return `Up ${humanDuration(now - (state.startedAt?.getTime() ?? now))} (Paused)`
    case 'restarting':
      return `Restarting (${state.exitCode}) ${humanDuration(now - (state.finishedAt?.getTime() ?? now))} ago`
    case 'removing':
      return 'Removal In Progress'
    case 'dead':
      return 'Dead'
    case 'created':
      return 'Created'
    case 'exited':
      return state.finishedAt ? `Exited (${state.exitCode}) ${humanDuration(now - state.finishedAt.getTime())} ago` : ''
  }
}

/** go-units HumanDuration. */
export function humanDuration(milliseconds: number): string {
  const seconds = Math.floor(milliseconds / 1000)
  if (seconds < 1) return 'Less than a second'
  if (seconds === 1) return '1 second'
  if (seconds < 60) return `${seconds} seconds`
  const minutes = Math.floor(seconds / 60)
  if (minutes === 1) return 'About a minute'
  if (minutes < 60) return `${minutes} minutes`
  const hours = Math.round(milliseconds / 3_600_000)
  if (hours === 1) return 'About an hour'
  if (hours < 48) return `${hours} hours`
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`
  return `${Math.floor(milliseconds / 3_600_000 / 24 / 365)} years`
}

function endpointSettings(container: EngineContainer): Record<string, unknown> {
  const running = container.state.status === 'running'
  const { network } = container
  return {
    IPAMConfig: null,
    Links: null,
    Aliases: network.aliases,
    MacAddress: running ? network.macAddress : '',
    DriverOpts: null,
    NetworkID: network.networkId,
    EndpointID: running ? network.endpointId : '',
    Gateway: running ? network.gateway : '',
    IPAddress: running ? network.ipAddress : '',
    IPPrefixLen: running ? network.ipPrefixLen : 0,
    IPv6Gateway: '',
    GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0,
    DNSNames: running ? [container.name, ...network.aliases, container.id.slice(0, 12)] : null,
  }
}

function mountPoints(container: EngineContainer): Record<string, unknown>[] {
  return container.mounts.map((mount) => ({
    Type: mount.type,
    ...(mount.name ? { Name: mount.name } : {}),
    Source: mount.source,
    Destination: mount.destination,
    ...(mount.type === 'volume' ? { Driver: 'local' } : {}),
    Mode: mount.type === 'volume' ? 'z' : 'rw',
    RW: mount.rw,
    Propagation: mount.type === 'bind' ? 'rprivate' : '',
  }))
}

function commandLine(container: EngineContainer): string {
  return [container.path, ...container.args].join(' ')
}

function containerSummary(container: EngineContainer): Record<string, unknown> {
  return {
    Id: container.id,
    Names: [`/${container.name}`],
    Image: container.image,
    ImageID: container.imageId,
    Command: commandLine(container),
    Created: Math.floor(container.created.getTime() / 1000),
    // Exposed to the network only: no host port, so `docker ps` shows `22/tcp`.
    Ports: container.config.exposedPorts.map((port) => {
      const [number, type = 'tcp'] = port.split('/')
      return { PrivatePort: Number(number), Type: type }
    }),
    Labels: container.config.labels,
    State: container.state.status,
    Status: containerStatusText(container.state),
    HostConfig: { NetworkMode: container.network.name },
    NetworkSettings: { Networks: { [container.network.name]: endpointSettings(container) } },
    Mounts: mountPoints(container),
  }
}

function containerInspect(container: EngineContainer, execIds: string[]): Record<string, unknown> {
  const { state, config } = container
  const running = state.status === 'running'
  const dir = `/var/lib/docker/containers/${container.id}`
  return {
    Id: container.id,
    Created: container.created.toISOString(),
    Path: container.path,
    Args: container.args,
    State: {
      Status: state.status,
      Running: running || state.status === 'paused',
      Paused: state.status === 'paused',
      Restarting: state.status === 'restarting',
      OOMKilled: false,
      Dead: state.status === 'dead',
      Pid: state.pid,
      ExitCode: state.exitCode,
      Error: '',
      StartedAt: isoTime(state.startedAt),
      FinishedAt: isoTime(state.finishedAt),
    },
    Image: container.imageId,
    ResolvConfPath: `${dir}/resolv.conf`,
    HostnamePath: `${dir}/hostname`,
    HostsPath: `${dir}/hosts`,
    LogPath: `${dir}/${container.id}-json.log`,
    Name: `/${container.name}`,
    RestartCount: 0,
    Driver: 'overlay2',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: 'docker-default',
    ExecIDs: execIds.length > 0 ? execIds : null,
    HostConfig: {
      Binds: container.mounts.filter((m) => m.type === 'bind').map((m) => `${m.source}:${m.destination}:rw`),
      ContainerIDFile: '',
      LogConfig: { Type: 'json-file', Config: {} },
      NetworkMode: container.network.name,
      PortBindings: {},
      RestartPolicy: { Name: container.restartPolicy, MaximumRetryCount: 0 },
      AutoRemove: false,
      VolumeDriver: '',
      VolumesFrom: null,
      Privileged: false,
      PublishAllPorts: false,
      ReadonlyRootfs: false,
      Init: false,
    },
    GraphDriver: {
      Data: {
        MergedDir: `/var/lib/docker/overlay2/${container.id}/merged`,
        UpperDir: `/var/lib/docker/overlay2/${container.id}/diff`,
        WorkDir: `/var/lib/docker/overlay2/${container.id}/work`,
      },
      Name: 'overlay2',
    },
    Mounts: mountPoints(container),
    Config: {
      Hostname: config.hostname,
      Domainname: '',
      User: config.user,
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      ExposedPorts: Object.fromEntries(config.exposedPorts.map((port) => [port, {}])),
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: config.env,
      Cmd: container.args,
      Image: container.image,
      Volumes: null,
      WorkingDir: config.workingDir,
      Entrypoint: [container.path],
      OnBuild: null,
      Labels: config.labels,
    },
    NetworkSettings: {
      Bridge: '',
      SandboxID: running ? container.id.split('').reverse().join('') : '',
      SandboxKey: running ? `/var/run/docker/netns/${container.id.slice(0, 12)}` : '',
      Ports: running ? Object.fromEntries(config.exposedPorts.map((port) => [port, null])) : {},
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: '',
      Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: '',
      IPPrefixLen: 0,
      IPv6Gateway: '',
      MacAddress: '',
      Networks: { [container.network.name]: endpointSettings(container) },
    },
  }
}

// ---- filters ----

type Filters = Map<string, string[]>

/**
 * The `filters` query: JSON, either `{"label": {"a=b": true}}` (what clients send) or the legacy
 * `{"label": ["a=b"]}` (filters.FromJSON accepts both).
 */
function parseFilters(text: string | null): Filters {
  const filters: Filters = new Map()
  if (!text) return filters
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw invalidParameter('invalid filter')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidParameter('invalid filter')
  for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(value)) filters.set(key, value.map(String))
    else if (typeof value === 'object' && value !== null) {
      filters.set(
        key,
        Object.entries(value as Record<string, unknown>)
          .filter(([, on]) => on === true)
          .map(([name]) => name),
      )
    } else throw invalidParameter('invalid filter')
  }
  return filters
}

function validateFilters(filters: Filters, accepted: string[]): void {
  for (const key of filters.keys()) if (!accepted.includes(key)) throw invalidParameter(`invalid filter '${key}'`)
}

/** filters.Match: no values for the key matches all; else an exact value, or a value as a regular expression. */
function filterMatch(filters: Filters, key: string, source: string): boolean {
  const values = filters.get(key)
  if (!values || values.length === 0) return true
  return values.some((value) => {
    if (value === source) return true
    try {
      return new RegExp(value).test(source)
    } catch {
      return false
    }
  })
}

/** filters.MatchKVList: every `key` or `key=value` filter must hold. */
function filterMatchKeyValues(filters: Filters, key: string, labels: Record<string, string>): boolean {
  const values = filters.get(key)
  if (!values || values.length === 0) return true
  return values.every((value) => {
    const at = value.indexOf('=')
    const name = at < 0 ? value : value.slice(0, at)
    if (!Object.hasOwn(labels, name)) return false
    return at < 0 || labels[name] === value.slice(at + 1)
  })
}

/** The filters dockerd accepts for `GET /containers/json`; others are answered with "invalid filter". */
const PS_FILTERS = [
  'ancestor',
  'before',
  'exited',
  'id',
  'isolation',
  'label',
  'name',
  'status',
  'health',
  'since',
  'volume',
  'network',
  'is-task',
  'publish',
  'expose',
] as const

/** True if the key has no values, or if one of its values passes. */
function anyValue(filters: Filters, key: string, test: (value: string) => boolean): boolean {
  const values = filters.get(key)
  return !values || values.length === 0 || values.some(test)
}

/** `ancestor`: the image by name (with or without its tag) or by id (a prefix, with or without `sha256:`). */
function isAncestor(value: string, container: EngineContainer): boolean {
  const untagged = container.image.replace(/:[^:/]+$/, '')
  const id = container.imageId.replace(/^sha256:/, '')
  return value === container.image || value === untagged || id.startsWith(value.replace(/^sha256:/, ''))
}

// ---- HTTP helpers ----

interface ParsedUrl {
  apiVersion: string | undefined
  path: string
  query: URLSearchParams
}

function parseUrl(raw: string): ParsedUrl {
  let url: URL
  try {
    url = new URL(raw, 'http://docker')
  } catch {
    return { apiVersion: undefined, path: raw, query: new URLSearchParams() }
  }
  const match = url.pathname.match(/^\/v([0-9]+\.[0-9]+)(\/.*)$/)
  const encoded = match ? match[2]! : url.pathname
  let path: string
  try {
    path = decodeURIComponent(encoded)
  } catch {
    path = encoded // a malformed escape: left as sent, it matches no route (404)
  }
  return { apiVersion: match?.[1], path: path.replace(/\/+$/, '') || '/', query: url.searchParams }
}

function compareVersions(a: string, b: string): number {
  const [aMajor = 0, aMinor = 0] = a.split('.').map(Number)
  const [bMajor = 0, bMinor = 0] = b.split('.').map(Number)
  return aMajor - bMajor || aMinor - bMinor
}

/** httputils.BoolValue: anything but empty, 0, no, false, none. */
function boolValue(value: string | null): boolean {
  if (value === null) return false
  return !['', '0', 'no', 'false', 'none'].includes(value.trim().toLowerCase())
}

function uint32Query(query: URLSearchParams, key: string, what: string): number {
  const value = query.get(key) ?? ''
  if (value === '') return 0
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) {
    throw invalidParameter(
      `invalid resize ${what} ${JSON.stringify(value)}: strconv.ParseUint: parsing ${JSON.stringify(value)}: invalid syntax`,
    )
  }
  return Number(value)
}

function recordBody(record: RequestRecord, body: Buffer): void {
  if (body.length === 0) return
  try {
    record.body = JSON.parse(body.toString('utf8'))
  } catch {
    record.body = body.toString('utf8')
  }
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : []
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** httputils.ReadJSON: a JSON body (or none) with a JSON content type. */
function readJson(req: IncomingMessage, body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {}
  const contentType = req.headers['content-type'] ?? ''
  if (contentType !== '' && !contentType.split(';')[0]!.trim().endsWith('json')) {
    throw invalidParameter(`unsupported Content-Type header (${contentType}): must be 'application/json'`)
  }
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'))
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error('json: cannot unmarshal into an object')
    }
    return parsed as Record<string, unknown>
  } catch (error) {
    throw invalidParameter(`invalid JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
}

/**
 * The body of an upgrade request. Node's HTTP parser hands over the connection right after the headers, so the body
 * is read here (Content-Length or chunked); what follows it is the first of the client's stream.
 */
function readUpgradeBody(req: IncomingMessage, socket: Socket, head: Buffer): Promise<{ body: Buffer; rest: Buffer }> {
  const length = req.headers['content-length']
  const chunked = /chunked/i.test(req.headers['transfer-encoding'] ?? '')
  const parse = (buffered: Buffer): { body: Buffer; rest: Buffer } | undefined => {
    if (chunked) return parseChunked(buffered)
    const size = length === undefined ? 0 : Number(length)
    if (!Number.isInteger(size) || size < 0) throw invalidParameter('invalid Content-Length')
    return buffered.length >= size ? { body: buffered.subarray(0, size), rest: buffered.subarray(size) } : undefined
  }
  return new Promise((resolve, reject) => {
    let buffered = head
    const cleanup = () => {
      socket.off('data', onData)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      socket.pause()
    }
    const attempt = (): boolean => {
      let result: { body: Buffer; rest: Buffer } | undefined
      try {
        result = parse(buffered)
      } catch (error) {
        cleanup()
        reject(error)
        return true
      }
      if (!result) return false
      cleanup()
      resolve(result)
      return true
    }
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      attempt()
    }
    const onEnd = () => {
      cleanup()
      reject(invalidParameter('invalid JSON: got EOF while reading request body'))
    }
    if (attempt()) return
    socket.on('data', onData)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
    socket.resume()
  })
}

function parseChunked(buffered: Buffer): { body: Buffer; rest: Buffer } | undefined {
  const parts: Buffer[] = []
  let offset = 0
  for (;;) {
    const lineEnd = buffered.indexOf('\r\n', offset)
    if (lineEnd < 0) return undefined
    const size = Number.parseInt(buffered.subarray(offset, lineEnd).toString('latin1').split(';')[0]!, 16)
    if (Number.isNaN(size)) throw invalidParameter('invalid chunked body')
    const dataStart = lineEnd + 2
    if (size === 0) {
      // No trailers from the clients that matter here: the last chunk is followed by an empty line.
      const end = buffered.indexOf('\r\n', dataStart)
      if (end < 0) return undefined
      return { body: Buffer.concat(parts), rest: buffered.subarray(end + 2) }
    }
    if (buffered.length < dataStart + size + 2) return undefined
    parts.push(buffered.subarray(dataStart, dataStart + size))
    offset = dataStart + size + 2
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  // Go's json.Encoder ends every document with a newline.
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function sendEmpty(res: ServerResponse, status: number): void {
  res.writeHead(status, { 'Content-Length': '0' })
  res.end()
}

function sendError(res: ServerResponse, error: unknown): void {
  const status = error instanceof EngineError ? error.status : 500
  const message = error instanceof Error ? error.message : String(error)
  if (res.headersSent) {
    res.destroy()
    return
  }
  sendJson(res, status, { message })
}

/** An HTTP response written straight to a connection that node's HTTP server has handed over (upgrade requests). */
function writeRawResponse(socket: Socket, status: number, headers: Record<string, string>, body?: unknown): void {
  const text = body === undefined ? '' : `${JSON.stringify(body)}\n`
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}`,
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    ...(body === undefined ? [] : ['Content-Type: application/json']),
    `Content-Length: ${Buffer.byteLength(text)}`,
    `Date: ${new Date().toUTCString()}`,
    'Connection: close',
  ]
  socket.end(`${lines.join('\r\n')}\r\n\r\n${text}`)
}

async function listenOn(server: Server, start: () => void): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.once('listening', () => {
      server.off('error', reject)
      resolve()
    })
    start()
  })
}

function goArch(): string {
  const arches: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386' }
  return arches[process.arch] ?? process.arch
}

function kernelRelease(): string {
  try {
    return readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()
  } catch {
    return ''
  }
}
