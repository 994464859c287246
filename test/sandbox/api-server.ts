/**
 * The sandbox's Kubernetes API server: HTTPS on 127.0.0.1, bearer-token / client-certificate / basic auth, legacy
 * discovery, the REST reads kubectl and akm-access make (pods, secrets, services, namespaces, deployments), Table
 * output, SelfSubjectAccessReview, `Status` errors shaped exactly like the real ones, and the exec and port-forward
 * upgrades. What it serves lives in a `ClusterState` that the scenario API (index.ts) edits while it runs.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { WebSocketServer } from 'ws'
import type { PodRuntime, StreamFaults } from './contracts.js'
import {
  type ExecProtocolSupport,
  negotiateExecProtocol,
  offeredProtocols,
  parseExecRequest,
  serveExec,
} from './exec.js'
import { handlePortForwardUpgrade } from './portforward.js'
import type { Authorizer, ResourceAttributes } from './rbac.js'
import {
  type Json,
  listObject,
  namespaceTable,
  parseLabelSelector,
  podTable,
  secretTable,
  serviceTable,
} from './resources.js'
import { parseReview, reviewResponse } from './ssar.js'
import {
  badRequest,
  forbidden,
  internalError,
  methodNotAllowed,
  notFound,
  pathNotFound,
  StatusError,
  unauthorized,
} from './status.js'

export interface PodEntry {
  object: Json
  /** The running processes behind a Running pod; absent for pods that never started. */
  runtime: PodRuntime | undefined
}

export interface ClusterState {
  namespaces: Set<string>
  /** Keyed by `namespace/name`. */
  pods: Map<string, PodEntry>
  secrets: Map<string, Json>
  services: Map<string, Json>
  deployments: Map<string, Json>
}

export interface ApiFaults {
  /** Delay every REST response by this long (a slow API server; for --request-timeout tests). */
  delayMs?: number
  /** Answer requests whose path matches with 500 InternalError. */
  failPaths?: RegExp
  /** Refuse streaming upgrades: a proxy or server that won't switch protocols. */
  refuseUpgrades?: 'exec' | 'portforward' | 'all'
}

export interface RequestRecord {
  method: string
  path: string
  user: string | undefined
  userAgent: string | undefined
  upgrade: string | undefined
  at: number
}

export interface ApiServerOptions {
  cert: string
  key: string
  /** CA that signs client certificates. */
  clientCa: string
  gitVersion: string
  /** Bearer tokens and the user each stands for. */
  tokens: Map<string, string>
  /** Basic-auth users: name -> password. */
  basicUsers: Map<string, string>
  state: ClusterState
  authorizer: Authorizer
  apiFaults: ApiFaults
  streamFaults: StreamFaults
  execProtocols: ExecProtocolSupport
}

export class ApiServer {
  readonly server: Server
  readonly requests: RequestRecord[] = []
  /** Streams (exec, port-forward) by pod name, so that deleting a pod can cut them. */
  private readonly streams = new Map<string, Set<Duplex>>()
  private readonly sockets = new Set<Socket>()
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })

  constructor(private readonly options: ApiServerOptions) {
    this.server = createServer(
      {
        cert: options.cert,
        key: options.key,
        ca: options.clientCa,
        requestCert: true,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
      },
      (req, res) => void this.handleRequest(req, res),
    )
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.handleUpgrade(req, socket, head)
    })
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket)
      socket.on('close', () => this.sockets.delete(socket))
    })
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(port, '127.0.0.1', () => resolve())
    })
    return (this.server.address() as AddressInfo).port
  }

  async close(): Promise<void> {
    for (const set of this.streams.values()) for (const stream of set) stream.destroy()
    for (const socket of this.sockets) socket.destroy()
    this.wss.close()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  /** Cuts every stream (exec, port-forward) of a pod, as when its node or kubelet goes away. */
  dropStreams(podName: string): void {
    for (const stream of this.streams.get(podName) ?? []) stream.destroy()
    this.streams.delete(podName)
  }

  streamCount(podName?: string): number {
    if (podName) return this.streams.get(podName)?.size ?? 0
    let count = 0
    for (const set of this.streams.values()) count += set.size
    return count
  }

  // ---- authentication ----

  private authenticate(req: IncomingMessage): string | undefined {
    const header = req.headers.authorization
    if (header?.startsWith('Bearer ')) {
      const token = header.slice('Bearer '.length).trim()
      for (const [known, user] of this.options.tokens) if (safeEqual(known, token)) return user
      return undefined
    }
    if (header?.startsWith('Basic ')) {
      const [user, password] = Buffer.from(header.slice('Basic '.length), 'base64').toString('utf8').split(/:(.*)/s)
      const expected = user === undefined ? undefined : this.options.basicUsers.get(user)
      return expected !== undefined && password !== undefined && safeEqual(expected, password) ? user : undefined
    }
    const socket = req.socket as TLSSocket
    if (socket.authorized) {
      const cert = socket.getPeerCertificate()
      const commonName = cert?.subject?.CN
      return Array.isArray(commonName) ? commonName[0] : commonName
    }
    return undefined
  }

  private authorize(user: string, attributes: ResourceAttributes): void {
    if (!this.options.authorizer.allowed(user, attributes)) throw forbidden(user, attributes)
  }

  // ---- REST ----

  private async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    const user = this.authenticate(req)
    this.record(req, url, user)
    try {
      if (this.options.apiFaults.delayMs) await sleep(this.options.apiFaults.delayMs)
      if (this.options.apiFaults.failPaths?.test(url.pathname)) throw internalError('sandbox fault injected')
      // /version and discovery are readable anonymously on a real cluster (system:public-info-viewer).
      if (url.pathname === '/version' || url.pathname === '/version/') {
        return sendJson(res, 200, this.versionInfo())
      }
      if (user === undefined) throw unauthorized()
      const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0)
      const result = this.route(req, url, user, body)
      sendJson(res, result.status ?? 200, result.body, result.contentType)
    } catch (error) {
      sendStatus(res, error)
    }
  }

  private versionInfo(): Json {
    const match = /^v(\d+)\.(\d+)/.exec(this.options.gitVersion)
    return {
      major: match?.[1] ?? '1',
      minor: match?.[2] ?? '32',
      gitVersion: this.options.gitVersion,
      gitCommit: createHash('sha1').update(this.options.gitVersion).digest('hex'),
      gitTreeState: 'clean',
      buildDate: '2025-04-22T16:03:34Z',
      goVersion: 'go1.23.8',
      compiler: 'gc',
      platform: 'linux/amd64',
    }
  }

  private route(
    req: IncomingMessage,
    url: URL,
    user: string,
    body: Buffer,
  ): { status?: number; body: Json; contentType?: string } {
    const path = url.pathname.replace(/\/$/, '')
    const method = req.method ?? 'GET'
    const wantsTable = (req.headers.accept ?? '').includes('as=Table')
    const discovery = discoveryDocuments(req.headers.host ?? '127.0.0.1')
    if (method === 'GET' && path in discovery) return { body: discovery[path] as Json }

    if (path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews') {
      if (method !== 'POST') throw methodNotAllowed()
      const review = parseReview(body, req.headers['content-type'])
      return { status: 201, body: reviewResponse(review, this.options.authorizer.allowed(user, review.attributes)) }
    }
    if (method !== 'GET') throw methodNotAllowed()
    const { state } = this.options

    if (path === '/api/v1/namespaces') {
      this.authorize(user, { verb: 'list', resource: 'namespaces' })
      const items = [...state.namespaces].sort().map((name) => namespaceJson(name))
      return this.list('NamespaceList', items, wantsTable ? namespaceTable : undefined)
    }
    let match = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path)
    if (match) {
      const name = decodeURIComponent(match[1]!)
      this.authorize(user, { verb: 'get', resource: 'namespaces', name })
      if (!state.namespaces.has(name)) throw notFound('namespaces', name)
      const object = namespaceJson(name)
      return wantsTable ? this.table(namespaceTable([object])) : { body: object }
    }

    match = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|secrets|services)(?:\/([^/]+))?$/.exec(path)
    if (match) {
      const namespace = decodeURIComponent(match[1]!)
      const resource = match[2] as 'pods' | 'secrets' | 'services'
      const name = match[3] === undefined ? undefined : decodeURIComponent(match[3])
      const store: Map<string, Json> =
        resource === 'pods'
          ? new Map([...state.pods].map(([key, entry]) => [key, entry.object]))
          : resource === 'secrets'
            ? state.secrets
            : state.services
      const render = resource === 'pods' ? podTable : resource === 'secrets' ? secretTable : serviceTable
      if (name !== undefined) {
        this.authorize(user, { verb: 'get', resource, namespace, name })
        const object = store.get(`${namespace}/${name}`)
        if (!object) throw notFound(resource, name)
        return wantsTable ? this.table(render([object])) : { body: object }
      }
      this.authorize(user, { verb: 'list', resource, namespace })
      const selector = url.searchParams.get('labelSelector')
      const matches = selector ? parseSelectorOrBadRequest(selector) : () => true
      const items = [...store.entries()]
        .filter(([key]) => key.startsWith(`${namespace}/`))
        .map(([, object]) => object)
        .filter((object) => matches(((object.metadata as Json).labels ?? {}) as Record<string, string>))
      const kind = resource === 'pods' ? 'PodList' : resource === 'secrets' ? 'SecretList' : 'ServiceList'
      return this.list(kind, items, wantsTable ? render : undefined)
    }

    match = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments(?:\/([^/]+))?$/.exec(path)
    if (match) {
      const namespace = decodeURIComponent(match[1]!)
      const name = match[2] === undefined ? undefined : decodeURIComponent(match[2])
      if (name !== undefined) {
        this.authorize(user, { verb: 'get', resource: 'deployments', group: 'apps', namespace, name })
        const object = state.deployments.get(`${namespace}/${name}`)
        if (!object) throw notFound('deployments.apps', name)
        return { body: object }
      }
      this.authorize(user, { verb: 'list', resource: 'deployments', group: 'apps', namespace })
      const items = [...state.deployments.entries()]
        .filter(([key]) => key.startsWith(`${namespace}/`))
        .map(([, o]) => o)
      return { body: { ...listObject('DeploymentList', items), apiVersion: 'apps/v1' } }
    }
    throw pathNotFound()
  }

  private list(kind: string, items: Json[], render: ((items: Json[]) => Json) | undefined) {
    return render ? this.table(render(items)) : { body: listObject(kind, items) }
  }

  private table(body: Json) {
    return { body, contentType: 'application/json;as=Table;v=v1;g=meta.k8s.io' }
  }

  // ---- upgrades: exec and port-forward ----

  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    const user = this.authenticate(req)
    this.record(req, url, user)
    socket.on('error', () => socket.destroy())
    try {
      const match = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|portforward)$/.exec(url.pathname)
      if (!match) throw pathNotFound()
      if (user === undefined) throw unauthorized()
      const namespace = decodeURIComponent(match[1]!)
      const podName = decodeURIComponent(match[2]!)
      const subresource = match[3] as 'exec' | 'portforward'
      // In 1.32 the WebSocket GET is authorized as `get`, the SPDY POST as `create` (protocols doc §4.10).
      const verb = req.method === 'POST' ? 'create' : 'get'
      this.authorize(user, { verb, resource: 'pods', subresource, namespace, name: podName })
      const refused = this.options.apiFaults.refuseUpgrades
      if (refused === 'all' || refused === subresource) throw badRequest('sandbox fault: upgrade refused')
      const entry = this.options.state.pods.get(`${namespace}/${podName}`)
      if (!entry) throw notFound('pods', podName)
      const pod = entry.object as { metadata: { uid: string }; spec: { containers: { name: string }[] } }
      const containers = pod.spec.containers.map((container) => container.name)
      const request = subresource === 'exec' ? parseExecRequest(url.searchParams) : undefined
      const container = request?.container ?? containers[0]
      if (request && (!container || !containers.includes(container))) {
        throw badRequest(`container ${request.container} is not valid for pod ${podName}`)
      }
      const running = entry.runtime && (entry.object.status as Json).phase === 'Running'
      if (!running || !entry.runtime) {
        // What the kubelet answers for a container that is not running (yet).
        throw badRequest(`unable to upgrade connection: container not found ("${container}")`)
      }
      const target = { podName, podUid: pod.metadata.uid, namespace, runtime: entry.runtime }
      this.track(podName, socket)
      if (request) {
        if (req.method === 'POST' || !isWebSocket(req)) {
          throw badRequest('Upgrade request required: the sandbox serves exec over WebSocket only')
        }
        const protocol = negotiateExecProtocol(offeredProtocols(req), this.options.execProtocols)
        if (protocol === undefined) {
          throw badRequest(`unable to upgrade: unable to negotiate protocol: ${offeredProtocols(req).join(', ')}`)
        }
        if (protocol !== '') req.headers['sec-websocket-protocol'] = protocol
        else delete req.headers['sec-websocket-protocol']
        serveExec(req, socket, head, this.wss, protocol, request, target, this.options.streamFaults)
        return
      }
      handlePortForwardUpgrade(req, socket, head, target, this.options.streamFaults, this.wss)
    } catch (error) {
      writeRawStatus(socket, error)
    }
  }

  private track(podName: string, socket: Duplex): void {
    let set = this.streams.get(podName)
    if (!set) {
      set = new Set()
      this.streams.set(podName, set)
    }
    set.add(socket)
    socket.on('close', () => set.delete(socket))
  }

  private record(req: IncomingMessage, url: URL, user: string | undefined): void {
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname + url.search,
      user,
      userAgent: req.headers['user-agent'],
      upgrade: req.headers.upgrade,
      at: Date.now(),
    })
  }
}

function isWebSocket(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').toLowerCase() === 'websocket'
}

function parseSelectorOrBadRequest(selector: string) {
  try {
    return parseLabelSelector(selector)
  } catch (error) {
    throw badRequest(`unable to parse requirement: ${(error as Error).message}`)
  }
}

function namespaceJson(name: string): Json {
  return {
    kind: 'Namespace',
    apiVersion: 'v1',
    metadata: { name, uid: createHash('md5').update(name).digest('hex'), creationTimestamp: '2025-01-01T00:00:00Z' },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  }
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a)
  const right = Buffer.from(b)
  return left.length === right.length && timingSafeEqual(left, right)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-cache, private',
  })
  res.end(text)
}

function toStatusError(error: unknown): StatusError {
  return error instanceof StatusError ? error : internalError(error instanceof Error ? error.message : String(error))
}

function sendStatus(res: ServerResponse, error: unknown): void {
  const status = toStatusError(error)
  if (res.headersSent) return void res.destroy()
  sendJson(res, status.code, status.body)
}

const reasonPhrases: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
}

/** An error answer on a connection that asked to upgrade: a plain HTTP response with the Status body, then close. */
function writeRawStatus(socket: Duplex, error: unknown): void {
  const status = toStatusError(error)
  const text = JSON.stringify(status.body)
  if (!socket.writable) return void socket.destroy()
  socket.end(
    `HTTP/1.1 ${status.code} ${reasonPhrases[status.code] ?? 'Error'}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
      'Cache-Control: no-cache, private\r\n' +
      'Connection: close\r\n\r\n' +
      text,
  )
}

/** Legacy discovery, which kubectl 1.32 accepts when aggregated discovery is not offered. */
function discoveryDocuments(host: string): Record<string, Json> {
  const group = (name: string, version: string) => ({
    name,
    versions: [{ groupVersion: `${name}/${version}`, version }],
    preferredVersion: { groupVersion: `${name}/${version}`, version },
  })
  return {
    '/api': {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host }],
    },
    '/apis': {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [group('apps', 'v1'), group('authorization.k8s.io', 'v1')],
    },
    '/api/v1': {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: 'v1',
      resources: [
        {
          name: 'namespaces',
          singularName: 'namespace',
          namespaced: false,
          kind: 'Namespace',
          verbs: ['get', 'list'],
          shortNames: ['ns'],
        },
        {
          name: 'pods',
          singularName: 'pod',
          namespaced: true,
          kind: 'Pod',
          verbs: ['get', 'list', 'watch'],
          shortNames: ['po'],
          categories: ['all'],
        },
        { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
        {
          name: 'pods/portforward',
          singularName: '',
          namespaced: true,
          kind: 'PodPortForwardOptions',
          verbs: ['create', 'get'],
        },
        { name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['get', 'list'] },
        {
          name: 'services',
          singularName: 'service',
          namespaced: true,
          kind: 'Service',
          verbs: ['get', 'list'],
          shortNames: ['svc'],
          categories: ['all'],
        },
      ],
    },
    '/apis/apps/v1': {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: 'apps/v1',
      resources: [
        {
          name: 'deployments',
          singularName: 'deployment',
          namespaced: true,
          kind: 'Deployment',
          verbs: ['get', 'list'],
          shortNames: ['deploy'],
          categories: ['all'],
        },
      ],
    },
    '/apis/authorization.k8s.io/v1': {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: 'authorization.k8s.io/v1',
      resources: [
        {
          name: 'selfsubjectaccessreviews',
          singularName: 'selfsubjectaccessreview',
          namespaced: false,
          kind: 'SelfSubjectAccessReview',
          verbs: ['create'],
        },
      ],
    },
  }
}
