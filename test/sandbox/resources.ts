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
      ? { lastState: { terminated: { reason: input.lastTerminationReason, exitCode: 1 } } }
      : { lastState: {} }),
  }))
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
      podIP: input.podIP ?? '10.244.0.10',
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

export function age(since: string | undefined, now = Date.now()): string {
  if (!since) return '<unknown>'
  const seconds = Math.max(0, Math.floor((now - Date.parse(since)) / 1000))
  if (seconds < 120) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 120) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  return hours < 48 ? `${hours}h` : `${Math.floor(hours / 24)}d`
}

interface PodLike {
  metadata: { name: string; creationTimestamp?: string; deletionTimestamp?: string }
  status: {
    phase: string
    podIP?: string
    containerStatuses?: { ready: boolean; restartCount: number; state?: { waiting?: { reason?: string } } }[]
  }
  spec: { containers: unknown[]; nodeName?: string }
}

/** The STATUS column as kubectl shows it: a waiting reason wins over the phase, deletion shows Terminating. */
export function podStatusColumn(pod: PodLike): string {
  if (pod.metadata.deletionTimestamp) return 'Terminating'
  const waiting = pod.status.containerStatuses?.find((status) => status.state?.waiting?.reason)
  return waiting?.state?.waiting?.reason ?? pod.status.phase
}

export function podTable(pods: Json[]): Json {
  const columns: Column[] = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.' },
    { name: 'Ready', type: 'string', description: 'The aggregate readiness state of this pod for accepting traffic.' },
    { name: 'Status', type: 'string', description: 'The aggregate status of the containers in this pod.' },
    {
      name: 'Restarts',
      type: 'string',
      description: 'The number of times the containers in this pod have been restarted.',
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
      const statuses = pod.status.containerStatuses ?? []
      const ready = statuses.filter((status) => status.ready).length
      const restarts = statuses.reduce((sum, status) => sum + status.restartCount, 0)
      return {
        cells: [
          pod.metadata.name,
          `${ready}/${pod.spec.containers.length}`,
          podStatusColumn(pod),
          String(restarts),
          age(pod.metadata.creationTimestamp),
          pod.status.podIP ?? '<none>',
          pod.spec.nodeName ?? '<none>',
          '<none>',
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
          Object.entries(service.spec.selector ?? {})
            .map(([key, value]) => `${key}=${value}`)
            .join(',') || '<none>',
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
