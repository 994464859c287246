/**
 * "The management pod" is a role, not a name: a rollout, an eviction or a node failure replaces the pod, and a
 * long-running tunnel must follow the role. PodFollower keeps the current pod of one workload (the Deployment the
 * first pod belongs to), lists pods again when told that a stream to it failed, every `resyncMs`, or when a caller
 * needs a pod and none is known, and can wait (bounded) for a replacement to become ready. A list is one cheap GET
 * shared by every caller that asks at the same moment, not one per connection.
 */
import type { V1Pod, V1PodList } from '@kubernetes/client-node'
import { sleep, untilAborted } from '../abortable.js'
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import type { Prompter } from '../terminal/prompter.js'
import { findManagementPod, isManagementPod, type ManagementPod, type TargetOptions } from './find-target.js'
import { chooseContainer, choosePod, describeNotReady, workloadOf } from './select-pod.js'

export type FollowerEvent =
  /** The pod new streams go to changed (from is undefined for the first one). */
  | { kind: 'pod'; from: string | undefined; to: string }
  /** No ready pod right now; callers that need one wait (up to their deadline). */
  | { kind: 'waiting'; reason: string }
  /** Pods that were seen before and are no longer listed: whatever was connected to them is dead. */
  | { kind: 'gone'; pods: string[] }
  /** A background list failed (the API server may be restarting); the last known pod is kept. */
  | { kind: 'list-error'; message: string }

export interface PodFollowerOptions {
  target: TargetOptions & { namespace: string }
  /** Asked only to choose between several candidate workloads, on the first resolution. */
  prompter?: Prompter | undefined
  onEvent?: (event: FollowerEvent) => void
  /** Background re-list interval while the follower is in use (default 10 s; 0: only on demand). */
  resyncMs?: number
  /** Pause between lists while waiting for a ready pod (default: 250 ms doubling to 2 s). */
  retryMs?: { first: number; max: number }
}

type ListResult = { pod: ManagementPod } | { error: AccessError }

export class PodFollower {
  private pod: ManagementPod | undefined
  private stale = false
  private workload: string | undefined
  private listing: Promise<ListResult> | undefined
  private known = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private stopped = false

  constructor(
    private readonly client: KubeClient,
    private readonly options: PodFollowerOptions,
  ) {}

  /** The pod streams go to now, if one is known. */
  get currentPod(): ManagementPod | undefined {
    return this.pod
  }

  /**
   * The pod to connect to: the cached one, or a fresh list's choice. Waits for a ready pod until `deadline`
   * (epoch ms), then throws the reason (no pod, not ready, forbidden…). Errors that waiting cannot fix (RBAC, a
   * missing namespace, an unreachable API server on the first resolution) are thrown at once.
   */
  async current(deadline: number, signal?: AbortSignal): Promise<ManagementPod> {
    let pauseMs = this.options.retryMs?.first ?? 250
    for (;;) {
      signal?.throwIfAborted()
      if (this.pod && !this.stale) return this.pod
      // A list in flight may take up to --request-timeout: a stop (Ctrl-C) must not wait for it.
      const result = await untilAborted(this.relist(), signal)
      if ('pod' in result) return result.pod
      if (!isTransient(result.error) || Date.now() >= deadline) throw result.error
      await sleep(Math.min(pauseMs, Math.max(0, deadline - Date.now())), signal)
      pauseMs = Math.min(pauseMs * 2, this.options.retryMs?.max ?? 2000)
    }
  }

  /** A stream to `podName` failed: list again before the next stream goes there (and soon, in the background). */
  invalidate(podName: string): void {
    if (this.stopped || this.pod?.pod.name !== podName || this.stale) return
    this.stale = true
    this.relist().catch(() => {})
  }

  /** Starts the background re-list (for long-running users such as `forward`). */
  startResync(): void {
    const every = this.options.resyncMs ?? 10_000
    if (every <= 0 || this.timer) return
    // Failures are reported as events; a rejection here would have no one to catch it.
    this.timer = setInterval(() => this.relist().catch(() => {}), every)
    this.timer.unref()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** One list at a time; callers arriving meanwhile share its answer. */
  private relist(): Promise<ListResult> {
    this.listing ??= this.list().finally(() => {
      this.listing = undefined
    })
    return this.listing
  }

  private async list(): Promise<ListResult> {
    let result: ListResult
    try {
      result = { pod: await this.choose() }
    } catch (error) {
      if (!(error instanceof AccessError)) throw error
      result = { error }
    }
    if (this.stopped) return result
    if ('pod' in result) {
      const previous = this.pod?.pod.name
      this.pod = result.pod
      this.stale = false
      if (previous !== result.pod.pod.name) {
        this.options.onEvent?.({ kind: 'pod', from: previous, to: result.pod.pod.name })
      }
    } else if (isTransient(result.error)) {
      // The cached pod is not the one to use any more (gone or not ready), but a list error keeps it.
      if (result.error.exitCode !== ExitCode.unreachable) {
        this.stale = true
        this.options.onEvent?.({ kind: 'waiting', reason: result.error.message })
      } else if (this.pod) {
        this.options.onEvent?.({ kind: 'list-error', message: result.error.message })
      }
    }
    return result
  }

  /** The first time: the usual search (and its question, if several workloads match); then: the same workload. */
  private async choose(): Promise<ManagementPod> {
    const { target } = this.options
    if (!this.workload || target.pod) {
      const found = await findManagementPod(this.client, target, this.workload ? undefined : this.options.prompter)
      this.workload = found.pod.workload
      this.noteListed([found.pod.name])
      return found
    }
    const list = await this.client.request<V1PodList>(
      'GET',
      `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods`,
      { query: target.selector ? { labelSelector: target.selector } : {} },
    )
    const candidates = (target.selector ? list.items : list.items.filter(isManagementPod)).filter(
      (pod: V1Pod) => workloadOf(pod) === this.workload,
    )
    this.noteListed(candidates.map((pod) => pod.metadata?.name ?? ''))
    const choice = choosePod(candidates)
    if (choice.kind === 'chosen' || choice.kind === 'ambiguous') {
      const pod = choice.kind === 'chosen' ? choice.pod : choice.candidates[0]!
      return { namespace: target.namespace, pod, container: chooseContainer(pod, target.container) ?? '' }
    }
    if (choice.kind === 'not-ready') {
      throw new AccessError(`management pod ${choice.pod.name} is not ready: ${describeNotReady(choice.pod)}`, {
        exitCode: ExitCode.podNotReady,
        hint: `see why with: kubectl describe pod ${choice.pod.name} -n ${target.namespace}`,
      })
    }
    throw new AccessError(`no pod of ${this.workload} in namespace ${target.namespace}`, {
      exitCode: ExitCode.podNotFound,
      hint: `is the management pod being replaced? kubectl get pods -n ${target.namespace}`,
    })
  }

  private noteListed(names: string[]): void {
    const now = new Set(names.filter(Boolean))
    const gone = [...this.known].filter((name) => !now.has(name))
    // A pinned --pod is fetched by name: the others we knew of are not "gone" because it does not list them.
    if (!this.options.target.pod && gone.length > 0) this.options.onEvent?.({ kind: 'gone', pods: gone })
    this.known = this.options.target.pod ? new Set([...this.known, ...now]) : now
  }
}

/** Failures that a replacement pod (or a moment) can cure, as opposed to RBAC, a missing namespace, bad flags. */
export function isTransient(error: AccessError): boolean {
  return (
    error.exitCode === ExitCode.podNotFound ||
    error.exitCode === ExitCode.podNotReady ||
    error.exitCode === ExitCode.unreachable
  )
}
