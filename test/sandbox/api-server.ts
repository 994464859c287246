/**
 * The sandbox's Kubernetes API server: HTTPS on 127.0.0.1, bearer-token / client-certificate / basic auth, legacy
 * discovery, the REST reads kubectl and akm-access make (pods, secrets, services, namespaces, deployments; in a
 * namespace or across all of them), Table output as the apiserver's printers render it, watches fed by the scenario
 * API's changes (`notify`), SelfSubjectAccessReview and SelfSubjectReview, `Status` errors shaped exactly like the
 * real ones, and the exec (WebSocket, and SPDY as the kubelet serves it: exec-spdy.ts) and port-forward upgrades.
 * What it serves lives in a `ClusterState` that the scenario API (index.ts) edits while it runs.
 *
 * Its fidelity is proven with the real kubectl and OpenSSH in test/fidelity/.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { createServer, type Server } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { WebSocketServer } from 'ws'
import type { PodRuntime, PodStreamTarget, StreamFaults } from './contracts.js'
import {
  type ExecProtocolSupport,
  type ExecRequest,
  negotiateExecProtocol,
  offeredProtocols,
  parseExecRequest,
  serveExec,
  serveExecFailure,
} from './exec.js'
import { isSpdyUpgrade, serveSpdyExec } from './exec-spdy.js'
import { handlePortForwardUpgrade } from './portforward.js'
import type { Authorizer, ResourceAttributes } from './rbac.js'
import {
  deploymentTable,
  type Json,
  listObject,
  namespaceTable,
  nextResourceVersion,
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

export type WatchedResource = 'pods' | 'secrets' | 'services' | 'deployments'
export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

interface WatchEvent {
  resourceVersion: number
  resource: WatchedResource
  namespace: string
  type: WatchEventType
  object: Json
}

interface WatchRequest {
  resource: WatchedResource
  namespace: string | undefined
  matches: (object: Json) => boolean
  /** Set when Table objects were asked for. */
  render: ((items: Json[]) => Json) | undefined
  /** The objects that match now, for a watch that starts without a resourceVersion. */
  initial: Json[]
  resourceVersion: string
  timeoutSeconds: number
}

type RouteResult = { status?: number; body: Json; contentType?: string } | { watch: WatchRequest }

/** How many changes a watch can resume from. */
const WATCH_LOG_LENGTH = 1000

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
  /** The recent changes, for watches that resume from a resourceVersion. */
  private readonly watchLog: WatchEvent[] = []
  private readonly watchers = new Set<(event: WatchEvent) => void>()

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

  /** The groups the authenticator gives a user: a client certificate's O values, plus system:authenticated. */
  private groupsOf(req: IncomingMessage): string[] {
    const socket = req.socket as TLSSocket
    const organisations =
      socket.authorized && !req.headers.authorization ? socket.getPeerCertificate()?.subject?.O : undefined
    const fromCertificate =
      organisations === undefined ? [] : Array.isArray(organisations) ? organisations : [organisations]
    return [...fromCertificate, 'system:authenticated']
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
      // Credentials that fail authentication are refused everywhere, /version included: only a request that
      // carries none is anonymous. The sandbox lets anonymous requests read /version (system:public-info-viewer)
      // and nothing else (an AuthenticationConfiguration whose anonymous access is limited to some paths).
      if (user === undefined && hasCredentials(req)) throw unauthorized()
      if (url.pathname === '/version' || url.pathname === '/version/') {
        return sendJson(res, 200, this.versionInfo())
      }
      if (user === undefined) throw unauthorized()
      const body = req.method === 'POST' ? await readBody(req) : Buffer.alloc(0)
      const result = this.route(req, url, user, body)
      if ('watch' in result) return this.serveWatch(req, res, result.watch)
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

  private route(req: IncomingMessage, url: URL, user: string, body: Buffer): RouteResult {
    const path = url.pathname.replace(/\/$/, '')
    const method = req.method ?? 'GET'
    const wantsTable = (req.headers.accept ?? '').includes('as=Table')
    const discovery = discoveryDocuments(req.headers.host ?? '127.0.0.1')
    if (method === 'GET' && path in discovery) return { body: discovery[path] as Json }

    if (path === '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews') {
      if (method !== 'POST') throw methodNotAllowed()
      const review = parseReview(body, req.headers['content-type'])
      return {
        status: 201,
        body: reviewResponse(review, this.options.authorizer.allowed(user, review.attributes), user),
      }
    }
    if (path === '/apis/authentication.k8s.io/v1/selfsubjectreviews') {
      if (method !== 'POST') throw methodNotAllowed()
      return { status: 201, body: selfSubjectReview(user, this.groupsOf(req)) }
    }
    if (STREAM_PATH.test(path)) {
      // exec and portforward without an upgrade: checked like an upgrade, then refused (UpgradeAwareHandler).
      this.resolveStreamTarget(req, url, user)
      throw badRequest('Upgrade request required')
    }
    // The resources below are read-only here (their discovery verbs are get and list): other methods are 405, while
    // a path the server does not serve at all is 404 whatever the method.
    const readOnly = () => {
      if (method !== 'GET') throw methodNotAllowed()
    }
    const { state } = this.options

    if (path === '/api/v1/namespaces') {
      readOnly()
      this.authorize(user, { verb: 'list', resource: 'namespaces' })
      const items = [...state.namespaces].sort().map((name) => namespaceJson(name))
      return this.list('NamespaceList', items, wantsTable ? namespaceTable : undefined)
    }
    let match = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path)
    if (match) {
      readOnly()
      const name = decodeURIComponent(match[1]!)
      this.authorize(user, { verb: 'get', resource: 'namespaces', name })
      if (!state.namespaces.has(name)) throw notFound('namespaces', name)
      const object = namespaceJson(name)
      return wantsTable ? this.table(namespaceTable([object])) : { body: object }
    }

    match = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?(pods|secrets|services)(?:\/([^/]+))?$/.exec(path)
    if (match) {
      readOnly()
      const namespace = match[1] === undefined ? undefined : decodeURIComponent(match[1])
      const resource = match[2] as 'pods' | 'secrets' | 'services'
      const name = match[3] === undefined ? undefined : decodeURIComponent(match[3])
      if (name !== undefined && namespace === undefined) throw pathNotFound()
      const store: Map<string, Json> =
        resource === 'pods'
          ? new Map([...state.pods].map(([key, entry]) => [key, entry.object]))
          : resource === 'secrets'
            ? state.secrets
            : state.services
      const render = resource === 'pods' ? podTable : resource === 'secrets' ? secretTable : serviceTable
      const kind = resource === 'pods' ? 'PodList' : resource === 'secrets' ? 'SecretList' : 'ServiceList'
      return this.readResource(url, user, { resource, namespace, name, store, render, kind, wantsTable })
    }

    match = /^\/apis\/apps\/v1\/(?:namespaces\/([^/]+)\/)?deployments(?:\/([^/]+))?$/.exec(path)
    if (match) {
      readOnly()
      const namespace = match[1] === undefined ? undefined : decodeURIComponent(match[1])
      const name = match[2] === undefined ? undefined : decodeURIComponent(match[2])
      if (name !== undefined && namespace === undefined) throw pathNotFound()
      // The Deployment controller's bookkeeping, done at read time: its status counts the pods it selects.
      const store = new Map([...state.deployments].map(([key, object]) => [key, this.withReplicaStatus(object)]))
      return this.readResource(url, user, {
        resource: 'deployments',
        group: 'apps',
        namespace,
        name,
        store,
        render: deploymentTable,
        kind: 'DeploymentList',
        apiVersion: 'apps/v1',
        wantsTable,
      })
    }
    throw pathNotFound()
  }

  /**
   * GET of one object or a list (in a namespace, or across all of them) of a namespaced resource, with RBAC, label
   * selectors and Table output. `watch` is refused: the sandbox keeps no event history to stream from.
   */
  private readResource(
    url: URL,
    user: string,
    options: {
      resource: WatchedResource
      group?: string
      namespace: string | undefined
      name: string | undefined
      store: Map<string, Json>
      render: (items: Json[]) => Json
      kind: string
      apiVersion?: string
      wantsTable: boolean
    },
  ): RouteResult {
    const { resource, group, namespace, name, store, render, kind, wantsTable } = options
    const notFoundKind = group ? `${resource}.${group}` : resource
    if (name !== undefined) {
      this.authorize(user, { verb: 'get', resource, namespace, name, ...(group ? { group } : {}) })
      const object = store.get(`${namespace}/${name}`)
      if (!object) throw notFound(notFoundKind, name)
      return wantsTable ? this.table(render([object])) : { body: object }
    }
    const watching = ['true', '1'].includes(url.searchParams.get('watch') ?? '')
    this.authorize(user, {
      verb: watching ? 'watch' : 'list',
      resource,
      ...(namespace === undefined ? {} : { namespace }),
      ...(group ? { group } : {}),
    })
    const selector = url.searchParams.get('labelSelector')
    const matchesLabels = selector ? parseSelectorOrBadRequest(selector) : () => true
    const matchesFields = parseFieldSelector(url.searchParams.get('fieldSelector'))
    const matches = (object: Json) => {
      const metadata = object.metadata as { labels?: Record<string, string> }
      return matchesLabels(metadata.labels ?? {}) && matchesFields(object)
    }
    const items = [...store.entries()]
      .filter(([key]) => namespace === undefined || key.startsWith(`${namespace}/`))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => object)
      .filter(matches)
    if (watching) {
      return {
        watch: {
          resource,
          namespace,
          matches,
          render: wantsTable ? render : undefined,
          initial: items,
          resourceVersion: url.searchParams.get('resourceVersion') ?? '',
          timeoutSeconds: Number(url.searchParams.get('timeoutSeconds') ?? 0),
        },
      }
    }
    if (wantsTable) return this.table(render(items))
    const list = listObject(kind, items)
    return { body: options.apiVersion ? { ...list, apiVersion: options.apiVersion } : list }
  }

  // ---- watch ----

  /**
   * Records a change the scenario API made to the cluster state, with a new resourceVersion, and tells the open
   * watches. `object` is the object as it now is (for DELETED: as it was). A change to a pod also changes the
   * status of the Deployments of its namespace, as their controller would report it.
   */
  notify(resource: WatchedResource, type: WatchEventType, object: Json): void {
    const metadata = object.metadata as { name: string; namespace: string; resourceVersion?: string }
    metadata.resourceVersion = nextResourceVersion()
    const event: WatchEvent = {
      resourceVersion: Number(metadata.resourceVersion),
      resource,
      namespace: metadata.namespace,
      type,
      object: structuredClone(resource === 'deployments' ? this.withReplicaStatus(object) : object),
    }
    this.watchLog.push(event)
    if (this.watchLog.length > WATCH_LOG_LENGTH) this.watchLog.shift()
    for (const subscriber of this.watchers) subscriber(event)
    if (resource === 'pods') {
      for (const [key, deployment] of this.options.state.deployments) {
        if (key.startsWith(`${metadata.namespace}/`)) this.notify('deployments', 'MODIFIED', deployment)
      }
    }
  }

  /**
   * A watch, as the apiserver streams it: `{"type":…,"object":…}` lines on a chunked 200. Without a
   * resourceVersion (or with "0") it starts with an ADDED for every object that matches; with one, it replays the
   * changes after it. Objects are Tables when asked for (column definitions in the first event only).
   */
  private serveWatch(req: IncomingMessage, res: ServerResponse, watch: WatchRequest): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' })
    res.flushHeaders()
    let headers = true
    const send = (type: WatchEventType, object: Json) => {
      let payload = object
      if (watch.render) {
        payload = watch.render([object])
        if (!headers) payload.columnDefinitions = null // Go's nil slice: only the first event has the columns
        headers = false
      }
      res.write(`${JSON.stringify({ type, object: payload })}\n`)
    }
    const wanted = (event: WatchEvent) =>
      event.resource === watch.resource &&
      (watch.namespace === undefined || event.namespace === watch.namespace) &&
      watch.matches(event.object)
    const since = Number(watch.resourceVersion)
    if (watch.resourceVersion === '' || watch.resourceVersion === '0' || Number.isNaN(since)) {
      for (const object of watch.initial) send('ADDED', object)
    } else {
      for (const event of this.watchLog)
        if (event.resourceVersion > since && wanted(event)) send(event.type, event.object)
    }
    const subscriber = (event: WatchEvent) => {
      if (wanted(event)) send(event.type, event.object)
    }
    this.watchers.add(subscriber)
    const timer = watch.timeoutSeconds > 0 ? setTimeout(() => res.end(), watch.timeoutSeconds * 1000) : undefined
    const stop = () => {
      this.watchers.delete(subscriber)
      clearTimeout(timer)
    }
    res.on('close', stop)
    req.on('close', stop)
  }

  private list(kind: string, items: Json[], render: ((items: Json[]) => Json) | undefined) {
    return render ? this.table(render(items)) : { body: listObject(kind, items) }
  }

  /** A Deployment with the status its controller would report: replicas, ready, up to date, available. */
  private withReplicaStatus(deployment: Json): Json {
    const metadata = deployment.metadata as { namespace: string }
    const spec = deployment.spec as {
      selector?: { matchLabels?: Record<string, string> }
      template?: { metadata?: { labels?: Record<string, string> } }
    }
    const selector = spec.selector?.matchLabels ?? {}
    const pods = [...this.options.state.pods.entries()]
      .filter(([key]) => key.startsWith(`${metadata.namespace}/`))
      .map(
        ([, entry]) => entry.object as { metadata: Json; status: { conditions?: { type: string; status: string }[] } },
      )
      .filter((pod) => {
        const labels = (pod.metadata.labels ?? {}) as Record<string, string>
        return (
          Object.entries(selector).every(([key, value]) => labels[key] === value) && !pod.metadata.deletionTimestamp
        )
      })
    const ready = pods.filter((pod) =>
      pod.status.conditions?.some((condition) => condition.type === 'Ready' && condition.status === 'True'),
    )
    // The newest pod belongs to the current ReplicaSet (a rollout starts the new pod before it deletes the old).
    const hashOf = (pod: { metadata: Json }) => ((pod.metadata.labels ?? {}) as Json)['pod-template-hash']
    const newest = [...pods].sort((a, b) =>
      String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)),
    )[0]
    const updated = pods.filter((pod) => newest !== undefined && hashOf(pod) === hashOf(newest))
    return {
      ...deployment,
      status: {
        ...((deployment.status ?? {}) as Json),
        observedGeneration: (deployment.metadata as { generation?: number }).generation ?? 1,
        replicas: pods.length,
        updatedReplicas: updated.length,
        readyReplicas: ready.length,
        availableReplicas: ready.length,
        ...(pods.length - ready.length > 0 ? { unavailableReplicas: pods.length - ready.length } : {}),
      },
    }
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
      const { request, target, container } = this.resolveStreamTarget(req, url, user)
      if (!target) return this.refuseNotRunning(req, socket, head, request, container)
      this.track(target.podName, socket)
      if (request) {
        // SPDY is what the API server proxies to the kubelet: kubectl's fallback (POST) and older clients.
        if (isSpdyUpgrade(req)) return serveSpdyExec(req, socket, head, request, target, this.options.streamFaults)
        if (!isWebSocket(req)) throw badRequest('Upgrade request required')
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

  /**
   * An exec into a container that is not running gets past the API server and is refused by the kubelet
   * (`container not found ("…")`, a plain-text 500 from streaming.WriteError). The SPDY upgrade, which the API
   * server proxies, gets that answer as it is (kubectl: `unable to upgrade connection: container not found …`). A v5
   * WebSocket is accepted by the API server's stream translator before it dials the kubelet, so the refusal arrives
   * as an InternalError status on the error channel. (Port-forward keeps a 400 Status: kubectl itself refuses pods
   * that are not Running before it gets here.)
   */
  private refuseNotRunning(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    request: ExecRequest | undefined,
    container: string,
  ): void {
    const refusal = `container not found ("${container}")`
    if (!request) throw badRequest(`unable to upgrade connection: ${refusal}`)
    const protocol = isWebSocket(req) ? negotiateExecProtocol(offeredProtocols(req), this.options.execProtocols) : ''
    if (protocol === 'v5.channel.k8s.io') {
      req.headers['sec-websocket-protocol'] = protocol
      serveExecFailure(req, socket, head, this.wss, request, `unable to upgrade connection: ${refusal}`)
      return
    }
    writeRawText(socket, 500, refusal)
  }

  /**
   * What the API server checks before it proxies an exec or port-forward to the kubelet: the path, the user, RBAC
   * on the subresource, the pod, the exec options and container. Any failure is a `Status`, answered the same way to
   * the WebSocket GET, the SPDY POST and a request that does not upgrade at all. `target` is undefined when the
   * container does not run (what the kubelet then says is the caller's to answer).
   */
  private resolveStreamTarget(
    req: IncomingMessage,
    url: URL,
    user: string | undefined,
  ): { request: ExecRequest | undefined; target: PodStreamTarget | undefined; container: string } {
    if (user === undefined) throw unauthorized()
    const match = STREAM_PATH.exec(url.pathname.replace(/\/$/, ''))
    if (!match) throw pathNotFound()
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
    const running = (entry.object.status as Json).phase === 'Running'
    return {
      request,
      container: container ?? '',
      target:
        running && entry.runtime ? { podName, podUid: pod.metadata.uid, namespace, runtime: entry.runtime } : undefined,
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

/** A bearer token, basic credentials or a client certificate: what makes a request not anonymous. */
function hasCredentials(req: IncomingMessage): boolean {
  if (req.headers.authorization) return true
  const certificate = (req.socket as TLSSocket).getPeerCertificate?.()
  return certificate !== undefined && Object.keys(certificate).length > 0
}

const STREAM_PATH = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(exec|portforward)$/

function isWebSocket(req: IncomingMessage): boolean {
  return (req.headers.upgrade ?? '').toLowerCase() === 'websocket'
}

/** The field selectors kubectl sends (`metadata.name=x` for `get pod x -w`, `metadata.namespace=`): = and ==, !=. */
function parseFieldSelector(selector: string | null): (object: Json) => boolean {
  if (!selector) return () => true
  const requirements = selector.split(',').map((part) => {
    const match = /^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(part)
    if (!match) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`)
    const [, field, operator, value] = match as unknown as [string, string, string, string]
    if (field !== 'metadata.name' && field !== 'metadata.namespace') {
      throw badRequest(`field label not supported: ${field}`)
    }
    const key = field === 'metadata.name' ? 'name' : 'namespace'
    return (object: Json) => ((object.metadata as Json)[key] === value) === (operator !== '!=')
  })
  return (object) => requirements.every((requirement) => requirement(object))
}

function parseSelectorOrBadRequest(selector: string) {
  try {
    return parseLabelSelector(selector)
  } catch (error) {
    throw badRequest(`unable to parse requirement: ${(error as Error).message}`)
  }
}

/** What `kubectl auth whoami` asks: the user as the authenticator sees it. */
function selfSubjectReview(user: string, groups: string[]): Json {
  return {
    kind: 'SelfSubjectReview',
    apiVersion: 'authentication.k8s.io/v1',
    metadata: { creationTimestamp: null },
    status: { userInfo: { username: user, groups } },
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

/** A plain-text error as Go's http server sends what a handler writes without a Content-Type (sniffed). */
function writeRawText(socket: Duplex, code: number, text: string): void {
  if (!socket.writable) return void socket.destroy()
  socket.end(
    `HTTP/1.1 ${code} ${reasonPhrases[code] ?? 'Error'}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(text)}\r\n` +
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
      groups: [group('apps', 'v1'), group('authentication.k8s.io', 'v1'), group('authorization.k8s.io', 'v1')],
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
        { name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['get', 'list', 'watch'] },
        {
          name: 'services',
          singularName: 'service',
          namespaced: true,
          kind: 'Service',
          verbs: ['get', 'list', 'watch'],
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
          verbs: ['get', 'list', 'watch'],
          shortNames: ['deploy'],
          categories: ['all'],
        },
      ],
    },
    '/apis/authentication.k8s.io/v1': {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: 'authentication.k8s.io/v1',
      resources: [
        {
          name: 'selfsubjectreviews',
          singularName: 'selfsubjectreview',
          namespaced: false,
          kind: 'SelfSubjectReview',
          verbs: ['create'],
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
