/**
 * Which pod is "the management pod": pure decisions over pod objects, so that they can be tested without a cluster.
 * A pod's name changes with every rollout, so we never need it: we prefer a Running pod whose containers are all
 * Ready, and among several of the same workload (a rollout in progress) the newest.
 */
import type { V1Pod } from '@kubernetes/client-node'

export interface PodSummary {
  name: string
  namespace: string
  uid: string
  /** The controller the pod belongs to (Deployment for ReplicaSet pods), or the pod itself. */
  workload: string
  createdAt: number
  ready: boolean
  terminating: boolean
  /** Human status, as kubectl's STATUS column: Running, ContainerCreating, CrashLoopBackOff, Terminating… */
  status: string
  restarts: number
  /** Why the last container run ended (e.g. Error, OOMKilled), if it did. */
  lastTermination: string | undefined
  containers: string[]
  defaultContainer: string | undefined
  pod: V1Pod
}

export function summarizePod(pod: V1Pod): PodSummary {
  const metadata = pod.metadata ?? {}
  const statuses = pod.status?.containerStatuses ?? []
  const containers = (pod.spec?.containers ?? []).map((container) => container.name)
  const phase = pod.status?.phase ?? 'Unknown'
  const terminating = metadata.deletionTimestamp !== undefined && metadata.deletionTimestamp !== null
  const waiting = statuses.find((status) => status.state?.waiting?.reason)?.state?.waiting?.reason
  const terminated = statuses.find((status) => status.state?.terminated?.reason)?.state?.terminated?.reason
  const allReady = statuses.length > 0 && statuses.length >= containers.length && statuses.every((s) => s.ready)
  const readyCondition = pod.status?.conditions?.find((condition) => condition.type === 'Ready')
  return {
    name: metadata.name ?? '',
    namespace: metadata.namespace ?? '',
    uid: metadata.uid ?? '',
    workload: workloadOf(pod),
    createdAt: metadata.creationTimestamp ? new Date(metadata.creationTimestamp).getTime() : 0,
    ready: phase === 'Running' && !terminating && allReady && readyCondition?.status !== 'False',
    terminating,
    // As kubectl's STATUS column: a pod-level reason (Evicted, NodeLost) says more than the phase (Failed).
    status: terminating ? 'Terminating' : (waiting ?? terminated ?? pod.status?.reason ?? phase),
    restarts: statuses.reduce((sum, status) => sum + (status.restartCount ?? 0), 0),
    lastTermination: statuses.find((status) => status.lastState?.terminated?.reason)?.lastState?.terminated?.reason,
    containers,
    defaultContainer: metadata.annotations?.['kubectl.kubernetes.io/default-container'],
    pod,
  }
}

/** `Deployment/management-pod` for a pod of ReplicaSet `management-pod-6dd8b7f898`; `Pod/<name>` when unowned. */
export function workloadOf(pod: V1Pod): string {
  const owner =
    pod.metadata?.ownerReferences?.find((reference) => reference.controller) ?? pod.metadata?.ownerReferences?.[0]
  if (!owner) return `Pod/${pod.metadata?.name ?? ''}`
  const hash = pod.metadata?.labels?.['pod-template-hash']
  if (owner.kind === 'ReplicaSet') {
    const deployment = hash && owner.name.endsWith(`-${hash}`) ? owner.name.slice(0, -hash.length - 1) : undefined
    if (deployment) return `Deployment/${deployment}`
    const match = /^(.*)-[a-z0-9]{6,10}$/.exec(owner.name)
    return match?.[1] ? `Deployment/${match[1]}` : `ReplicaSet/${owner.name}`
  }
  return `${owner.kind}/${owner.name}`
}

export type PodChoice =
  | { kind: 'chosen'; pod: PodSummary }
  /** Ready pods of different workloads: the user must pick one (a prompt, or --pod). */
  | { kind: 'ambiguous'; candidates: PodSummary[] }
  /** Pods exist, none is ready: the best one to describe to the user. */
  | { kind: 'not-ready'; pod: PodSummary; others: number }
  | { kind: 'none' }

export function choosePod(pods: V1Pod[]): PodChoice {
  const summaries = pods.map(summarizePod).sort((a, b) => b.createdAt - a.createdAt)
  if (summaries.length === 0) return { kind: 'none' }
  const ready = summaries.filter((pod) => pod.ready)
  if (ready.length === 0) {
    // Describe the pod the user is waiting for: the newest that is not on its way out.
    const best = summaries.find((pod) => !pod.terminating) ?? summaries[0]!
    return { kind: 'not-ready', pod: best, others: summaries.length - 1 }
  }
  // Newest ready pod of each workload: during a rollout, old and new pods share one workload.
  const newestPerWorkload = new Map<string, PodSummary>()
  for (const pod of ready) if (!newestPerWorkload.has(pod.workload)) newestPerWorkload.set(pod.workload, pod)
  const candidates = [...newestPerWorkload.values()]
  if (candidates.length === 1) return { kind: 'chosen', pod: candidates[0]! }
  return { kind: 'ambiguous', candidates }
}

/** One line that says why a pod cannot be used yet, e.g. `CrashLoopBackOff (restarted 5 times, last: Error)`. */
export function describeNotReady(pod: PodSummary): string {
  const details: string[] = []
  const phase = pod.pod.status?.phase
  if (phase && phase !== pod.status) details.push(`phase ${phase}`)
  if (pod.status === 'Running') details.push('containers not ready')
  if (pod.restarts > 0) details.push(`restarted ${pod.restarts} time${pod.restarts === 1 ? '' : 's'}`)
  if (pod.lastTermination) details.push(`last exit: ${pod.lastTermination}`)
  const message = pod.pod.status?.containerStatuses?.find((status) => status.state?.waiting?.message)?.state?.waiting
    ?.message
  if (message) details.push(message)
  // e.g. "The node was low on resource: memory." for an evicted pod.
  if (pod.pod.status?.message) details.push(pod.pod.status.message)
  return details.length > 0 ? `${pod.status} (${details.join(', ')})` : pod.status
}

/** The container to use: --container, else kubectl's default-container annotation, else the first. */
export function chooseContainer(pod: PodSummary, requested: string | undefined): string | undefined {
  if (requested) return pod.containers.includes(requested) ? requested : undefined
  if (pod.defaultContainer && pod.containers.includes(pod.defaultContainer)) return pod.defaultContainer
  return pod.containers[0]
}
