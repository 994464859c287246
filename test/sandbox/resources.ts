/**
 * The objects the sandbox serves, shaped like the real API server's JSON, and their Table renderings (what kubectl
 * asks for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` to print its usual columns).
 */
import { randomUUID } from 'node:crypto'

export type Json = Record<string, unknown>

let resourceVersion = 1000
export function nextResourceVersion(): string {
  resourceVersion += 1
  return String(resourceVersion)
}

export interface PodSpecInput {
  name: string
  namespace: string
  labels: Record<string, string>
  /** The ReplicaSet that owns the pod (a Deployment rollout), if any. */
  ownerReplicaSet?: string
  containers: { name: string; env?: Json[]; envFrom?: Json[]; volumeMounts?: Json[]; ports?: Json[] }[]
  volumes?: Json[]
  createdAt: Date
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown'
  ready: boolean
  /** Why a container is waiting (ContainerCreating, CrashLoopBackOff, ImagePullBackOff…). */
  waitingReason?: string
  waitingMessage?: string
  restartCount?: number
  lastTerminationReason?: string
  /** When the container last terminated (default: when the object is made), for RESTARTS' "(5m ago)". */
  lastTerminationAt?: Date
  /** Set when the pod is being deleted. */
  deletionTimestamp?: Date
  podIP?: string
}

export function podObject(input: PodSpecInput, uid: string = randomUUID()): Json {
  const containerStatuses = input.containers.map((container) => ({
    name: container.name,
    ready: input.ready,
    restartCount: input.restartCount ?? 0,
    image: 'akamas/management-container:sandbox',
    imageID: 'sandbox://akamas/management-container',
    started: input.phase === 'Running',
    state: input.waitingReason
      ? { waiting: { reason: input.waitingReason, ...(input.waitingMessage ? { message: input.waitingMessage } : {}) } }
      : input.phase === 'Running'
        ? { running: { startedAt: input.createdAt.toISOString() } }
        : { waiting: { reason: 'ContainerCreating' } },
    ...(input.lastTerminationReason
      ? {
          lastState: {
            terminated: {
              reason: input.lastTerminationReason,
              exitCode: 1,
              startedAt: input.createdAt.toISOString(),
              finishedAt: (input.lastTerminationAt ?? new Date()).toISOString(),
              containerID: 'containerd://sandbox',
            },
          },
        }
      : { lastState: {} }),
  }))
  const podIP = input.podIP ?? '10.244.0.10'
  const conditions = [
    { type: 'PodScheduled', status: 'True' },
    { type: 'Initialized', status: 'True' },
    { type: 'ContainersReady', status: input.ready ? 'True' : 'False' },
    { type: 'Ready', status: input.ready ? 'True' : 'False' },
  ].map((condition) => ({ ...condition, lastTransitionTime: input.createdAt.toISOString() }))
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      uid,
      resourceVersion: nextResourceVersion(),
      creationTimestamp: input.createdAt.toISOString(),
      labels: input.labels,
      ...(input.deletionTimestamp
        ? { deletionTimestamp: input.deletionTimestamp.toISOString(), deletionGracePeriodSeconds: 30 }
        : {}),
      ...(input.ownerReplicaSet
        ? {
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: 'ReplicaSet',
                name: input.ownerReplicaSet,
                uid: randomUUID(),
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }
        : {}),
    },
    spec: {
      containers: input.containers.map((container) => ({
        name: container.name,
        image: 'akamas/management-container:sandbox',
        ...(container.env ? { env: container.env } : {}),
        ...(container.envFrom ? { envFrom: container.envFrom } : {}),
        ...(container.volumeMounts ? { volumeMounts: container.volumeMounts } : {}),
        ports: container.ports ?? [{ name: 'ssh', containerPort: 22, protocol: 'TCP' }],
      })),
      ...(input.volumes ? { volumes: input.volumes } : {}),
      restartPolicy: 'Always',
      nodeName: 'sandbox-node',
      serviceAccountName: 'default',
    },
    status: {
      phase: input.phase,
      conditions,
      hostIP: '127.0.0.1',
      hostIPs: [{ ip: '127.0.0.1' }],
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: input.createdAt.toISOString(),
      containerStatuses,
    },
  }
}

export function secretObject(namespace: string, name: string, type: string, data: Record<string, string>): Json {
  return {
    kind: 'Secret',
    apiVersion: 'v1',
    metadata: {
      name,
      namespace,
      uid: randomUUID(),
      resourceVersion: nextResourceVersion(),
      creationTimestamp: new Date().toISOString(),
    },
    type,
    data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
  }
}

export function serviceObject(namespace: string, name: string, selector: Record<string, string>, ports: Json[]): Json {
  return {
    kind: 'Service',
    apiVersion: 'v1',
    metadata: {
      name,
      namespace,
      uid: randomUUID(),
      resourceVersion: nextResourceVersion(),
      creationTimestamp: new Date().toISOString(),
    },
    spec: { type: 'ClusterIP', clusterIP: '10.96.0.22', clusterIPs: ['10.96.0.22'], selector, ports },
    status: { loadBalancer: {} },
  }
}

export function namespaceObject(name: string): Json {
  return {
    kind: 'Namespace',
    apiVersion: 'v1',
    metadata: {
      name,
      uid: randomUUID(),
      resourceVersion: nextResourceVersion(),
      creationTimestamp: new Date().toISOString(),
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  }
}

export function listObject(kind: string, items: Json[]): Json {
  return { kind, apiVersion: 'v1', metadata: { resourceVersion: String(resourceVersion) }, items }
}

// ---- Table output (k8s pkg/printers/internalversion/printers.go) ----

interface Column {
  name: string
  type: string
  format?: string
  priority?: number
  description: string
}

function table(columns: Column[], rows: { cells: unknown[]; object: Json }[]): Json {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: String(resourceVersion) },
    columnDefinitions: columns.map((column) => ({
      name: column.name,
      type: column.type,
      format: column.format ?? '',
      description: column.description,
      priority: column.priority ?? 0,
    })),
    rows: rows.map((row) => ({
      cells: row.cells,
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: row.object.metadata },
    })),
  }
}

/** translateTimestampSince: `<unknown>` for no timestamp, else duration.HumanDuration of the time since. */
export function age(since: string | undefined, now = Date.now()): string {
  if (!since) return '<unknown>'
  return humanDuration(now - Date.parse(since))
}

/**
 * k8s.io/apimachinery/pkg/util/duration.HumanDuration, which the API server's printers use for AGE and for the
 * "(5m ago)" of RESTARTS: about two significant figures ("2m5s", "4h30m", "2d5h", "3y10d").
 */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000)
  if (seconds < -1) return '<invalid>'
  if (seconds < 0) return '0s'
  if (seconds < 60 * 2) return `${seconds}s`
  const minutes = Math.trunc(seconds / 60)
  if (minutes < 10) {
    const s = seconds % 60
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`
  }
  if (minutes < 60 * 3) return `${minutes}m`
  const hours = Math.trunc(minutes / 60)
  if (hours < 8) {
    const m = minutes % 60
    return m === 0 ? `${hours}h` : `${hours}h${m}m`
  }
  if (hours < 48) return `${hours}h`
  if (hours < 24 * 8) {
    const h = hours % 24
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`
  if (hours < 24 * 365 * 8) {
    const days = Math.trunc(hours / 24) % 365
    const years = Math.trunc(hours / 24 / 365)
    return days === 0 ? `${years}y` : `${years}y${days}d`
  }
  return `${Math.trunc(hours / 24 / 365)}y`
}

interface ContainerStatusLike {
  ready: boolean
  restartCount: number
  state?: {
    waiting?: { reason?: string }
    running?: unknown
    terminated?: { reason?: string; exitCode?: number; signal?: number }
  }
  lastState?: { terminated?: { finishedAt?: string } }
}

interface PodLike {
  metadata: { name: string; creationTimestamp?: string; deletionTimestamp?: string }
  status: {
    phase: string
    reason?: string
    podIPs?: { ip: string }[]
    nominatedNodeName?: string
    conditions?: { type: string; status: string }[]
    containerStatuses?: ContainerStatusLike[]
  }
  spec: { containers: unknown[]; nodeName?: string }
}

/**
 * The cells of a pod's Table row as the API server's printPod computes them (pkg/printers/internalversion): READY
 * counts containers that are ready *and* running; STATUS is the phase (or status.reason), overridden by the first
 * container's waiting or terminated reason, then by `Terminating` for a pod being deleted that has not finished;
 * RESTARTS adds "(<age> ago)" of the latest termination. Init containers are not modelled (the management pod has
 * none).
 */
export function podRow(pod: PodLike, now = Date.now()): { ready: string; status: string; restarts: string } {
  const phase = pod.status.phase
  let reason = pod.status.reason || phase
  let restarts = 0
  let readyContainers = 0
  let lastRestart = 0
  let hasRunning = false
  const statuses = pod.status.containerStatuses ?? []
  for (let i = statuses.length - 1; i >= 0; i--) {
    const container = statuses[i]!
    restarts += container.restartCount
    const finishedAt = Date.parse(container.lastState?.terminated?.finishedAt ?? '')
    if (!Number.isNaN(finishedAt) && finishedAt > lastRestart) lastRestart = finishedAt
    const { waiting, terminated, running } = container.state ?? {}
    if (waiting?.reason) reason = waiting.reason
    else if (terminated?.reason) reason = terminated.reason
    else if (terminated)
      reason = terminated.signal ? `Signal:${terminated.signal}` : `ExitCode:${terminated.exitCode ?? 0}`
    else if (container.ready && running) {
      hasRunning = true
      readyContainers++
    }
  }
  if (reason === 'Completed' && hasRunning) {
    const podReady = pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
    reason = podReady ? 'Running' : 'NotReady'
  }
  if (pod.metadata.deletionTimestamp && pod.status.reason === 'NodeLost') reason = 'Unknown'
  else if (pod.metadata.deletionTimestamp && phase !== 'Succeeded' && phase !== 'Failed') reason = 'Terminating'
  const restartsText =
    restarts !== 0 && lastRestart > 0 ? `${restarts} (${humanDuration(now - lastRestart)} ago)` : String(restarts)
  return { ready: `${readyContainers}/${pod.spec.containers.length}`, status: reason, restarts: restartsText }
}

/** The STATUS column as kubectl shows it (see podRow). */
export function podStatusColumn(pod: PodLike): string {
  return podRow(pod).status
}

export function podTable(pods: Json[]): Json {
  const columns: Column[] = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' },
    { name: 'Ready', type: 'string', description: 'The aggregate readiness state of this pod for accepting traffic.' },
    { name: 'Status', type: 'string', description: 'The aggregate status of the containers in this pod.' },
    {
      name: 'Restarts',
      type: 'string',
      description:
        'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.',
    },
    {
      name: 'Age',
      type: 'string',
      description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
    },
    { name: 'IP', type: 'string', priority: 1, description: 'IP address allocated to the pod.' },
    { name: 'Node', type: 'string', priority: 1, description: 'Name of the Node the Pod is scheduled on.' },
    {
      name: 'Nominated Node',
      type: 'string',
      priority: 1,
      description: 'nominatedNodeName is set when this pod preempts other pods on the node.',
    },
    {
      name: 'Readiness Gates',
      type: 'string',
      priority: 1,
      description: 'If specified, all readiness gates will be evaluated for pod readiness.',
    },
  ]
  return table(
    columns,
    pods.map((object) => {
      const pod = object as unknown as PodLike
      const row = podRow(pod)
      return {
        cells: [
          pod.metadata.name,
          row.ready,
          row.status,
          row.restarts,
          age(pod.metadata.creationTimestamp),
          pod.status.podIPs?.[0]?.ip || '<none>',
          pod.spec.nodeName || '<none>',
          pod.status.nominatedNodeName || '<none>',
          '<none>',
        ],
        object,
      }
    }),
  )
}

export function secretTable(secrets: Json[]): Json {
  const columns: Column[] = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' },
    { name: 'Type', type: 'string', description: 'The type of the secret' },
    { name: 'Data', type: 'string', description: 'The number of entries in the secret' },
    {
      name: 'Age',
      type: 'string',
      description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
    },
  ]
  return table(
    columns,
    secrets.map((object) => {
      const secret = object as { metadata: { name: string; creationTimestamp?: string }; type: string; data?: Json }
      return {
        cells: [
          secret.metadata.name,
          secret.type,
          Object.keys(secret.data ?? {}).length,
          age(secret.metadata.creationTimestamp),
        ],
        object,
      }
    }),
  )
}

export function serviceTable(services: Json[]): Json {
  const columns: Column[] = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' },
    { name: 'Type', type: 'string', description: 'The type of the service' },
    { name: 'Cluster-IP', type: 'string', description: 'The cluster IP' },
    { name: 'External-IP', type: 'string', description: 'The external IP' },
    { name: 'Port(s)', type: 'string', description: 'The ports' },
    {
      name: 'Age',
      type: 'string',
      description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
    },
    { name: 'Selector', type: 'string', priority: 1, description: 'The selector' },
  ]
  return table(
    columns,
    services.map((object) => {
      const service = object as {
        metadata: { name: string; creationTimestamp?: string }
        spec: {
          type: string
          clusterIP: string
          selector?: Record<string, string>
          ports: { port: number; protocol: string }[]
        }
      }
      return {
        cells: [
          service.metadata.name,
          service.spec.type,
          service.spec.clusterIP,
          '<none>',
          service.spec.ports.map((port) => `${port.port}/${port.protocol}`).join(','),
          age(service.metadata.creationTimestamp),
          formatLabels(service.spec.selector ?? {}),
        ],
        object,
      }
    }),
  )
}

/** labels.FormatLabels: `key=value` pairs sorted by key, or `<none>`. */
function formatLabels(labels: Record<string, string>): string {
  const keys = Object.keys(labels).sort()
  return keys.length === 0 ? '<none>' : keys.map((key) => `${key}=${labels[key]}`).join(',')
}

export function deploymentTable(deployments: Json[]): Json {
  const columns: Column[] = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' },
    { name: 'Ready', type: 'string', description: 'Number of the pod with ready state' },
    {
      name: 'Up-to-date',
      type: 'string',
      description:
        'Total number of non-terminating pods targeted by this deployment that have the desired template spec.',
    },
    {
      name: 'Available',
      type: 'string',
      description:
        'Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.',
    },
    {
      name: 'Age',
      type: 'string',
      description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
    },
    { name: 'Containers', type: 'string', priority: 1, description: 'Names of each container in the template.' },
    {
      name: 'Images',
      type: 'string',
      priority: 1,
      description: 'Images referenced by each container in the template.',
    },
    { name: 'Selector', type: 'string', priority: 1, description: 'Label selector for pods.' },
  ]
  return table(
    columns,
    deployments.map((object) => {
      const deployment = object as {
        metadata: { name: string; creationTimestamp?: string }
        spec: {
          replicas?: number
          selector?: { matchLabels?: Record<string, string> }
          template?: { spec?: { containers?: { name: string; image?: string }[] } }
        }
        status?: { readyReplicas?: number; updatedReplicas?: number; availableReplicas?: number }
      }
      const containers = deployment.spec.template?.spec?.containers ?? []
      const selector = deployment.spec.selector?.matchLabels ?? {}
      return {
        cells: [
          deployment.metadata.name,
          `${deployment.status?.readyReplicas ?? 0}/${deployment.spec.replicas ?? 0}`,
          deployment.status?.updatedReplicas ?? 0,
          deployment.status?.availableReplicas ?? 0,
          age(deployment.metadata.creationTimestamp),
          containers.map((container) => container.name).join(','),
          containers.map((container) => container.image ?? '').join(','),
          Object.keys(selector).length === 0 ? '<none>' : formatLabels(selector),
        ],
        object,
      }
    }),
  )
}

export function namespaceTable(namespaces: Json[]): Json {
  const columns: Column[] = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' },
    { name: 'Status', type: 'string', description: 'The status of the namespace' },
    {
      name: 'Age',
      type: 'string',
      description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
    },
  ]
  return table(
    columns,
    namespaces.map((object) => {
      const namespace = object as { metadata: { name: string; creationTimestamp?: string } }
      return { cells: [namespace.metadata.name, 'Active', age(namespace.metadata.creationTimestamp)], object }
    }),
  )
}

// ---- label selectors (the subset kubectl users write: =, ==, !=, in, notin, exists, !exists) ----

export type LabelMatcher = (labels: Record<string, string>) => boolean

export function parseLabelSelector(selector: string): LabelMatcher {
  const requirements = splitRequirements(selector).map(parseRequirement)
  return (labels) => requirements.every((requirement) => requirement(labels))
}

function splitRequirements(selector: string): string[] {
  const parts: string[] = []
  let depth = 0
  let current = ''
  for (const char of selector) {
    if (char === '(') depth++
    if (char === ')') depth--
    if (char === ',' && depth === 0) {
      parts.push(current)
      current = ''
    } else current += char
  }
  parts.push(current)
  return parts.map((part) => part.trim()).filter(Boolean)
}

function parseRequirement(text: string): LabelMatcher {
  let match = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(text)
  if (match) {
    const [, key, operator, list] = match as unknown as [string, string, string, string]
    const values = new Set(list.split(',').map((value) => value.trim()))
    return operator === 'in'
      ? (labels) => labels[key] !== undefined && values.has(labels[key])
      : (labels) => labels[key] === undefined || !values.has(labels[key])
  }
  match = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(text)
  if (match) {
    const [, key, operator, value] = match as unknown as [string, string, string, string]
    return operator === '!=' ? (labels) => labels[key] !== value : (labels) => labels[key] === value
  }
  match = /^(!?)([\w./-]+)$/.exec(text)
  if (match) {
    const [, not, key] = match as unknown as [string, string, string]
    return not ? (labels) => labels[key] === undefined : (labels) => labels[key] !== undefined
  }
  throw new Error(`unable to parse requirement: ${text}`)
}
