/**
 * A pod stream to whichever pod is the management pod now: shared by `forward` (one per accepted connection) and
 * `proxy` (one per run). An upgrade refused because the pod is gone or not running is retried on the pod a fresh
 * list names, until the caller's deadline; a stream that fails later marks its pod for a re-list, so that the next
 * connection does not try a dead pod first.
 */

import { sleep } from '../abortable.js'
import { AccessError, ExitCode } from '../errors.js'
import { isNotFound, KubeApiError } from '../kube/api-errors.js'
import type { KubeClient } from '../kube/client.js'
import type { PodFollower } from '../target/pod-follower.js'
import { openPodStream, type PodStream } from '../tunnel/pod-stream.js'

export interface FollowedStreamOptions {
  /** How long to wait for a ready pod (and retry refused upgrades) before failing, in ms. */
  podTimeoutMs: number
  /** Called before each retry, for --verbose. */
  onRetry?: (podName: string, error: Error) => void
  signal?: AbortSignal
  /** WebSocket ping interval for the stream (default 20 s). */
  keepaliveMs?: number
}

export async function openFollowedStream(
  client: KubeClient,
  follower: PodFollower,
  port: number,
  options: FollowedStreamOptions,
): Promise<PodStream> {
  const deadline = Date.now() + options.podTimeoutMs
  let pauseMs = 100
  for (;;) {
    const target = await follower.current(deadline, options.signal)
    const podName = target.pod.name
    try {
      const stream = await openPodStream(client, { namespace: target.namespace, podName }, port, {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.keepaliveMs !== undefined ? { pingIntervalMs: options.keepaliveMs } : {}),
      })
      // A stream that dies with an error (pod deleted, node lost, nothing listening) says the pod may be gone.
      stream.once('close', () => {
        if (stream.errored) follower.invalidate(podName)
      })
      return stream
    } catch (error) {
      if (!upgradeRetriable(error)) throw error
      follower.invalidate(podName)
      if (Date.now() >= deadline) throw podGone(podName, target.namespace, error as Error)
      options.onRetry?.(podName, error as Error)
      await sleep(Math.min(pauseMs, Math.max(0, deadline - Date.now())), options.signal)
      pauseMs = Math.min(pauseMs * 2, 1000)
    }
  }
}

/** The pod is gone (404), not running (400/409), its node or kubelet is failing (5xx), or the API server blinked. */
function upgradeRetriable(error: unknown): boolean {
  if (isNotFound(error)) return true
  if (error instanceof KubeApiError) {
    return error.httpStatus === 400 || error.httpStatus === 409 || error.httpStatus >= 500
  }
  return error instanceof AccessError && error.exitCode === ExitCode.unreachable
}

function podGone(podName: string, namespace: string, error: Error): Error {
  if (!isNotFound(error)) return error
  return new AccessError(`management pod ${podName} is gone and no ready pod has replaced it`, {
    exitCode: ExitCode.podNotFound,
    hint: `see what is happening with: kubectl get pods -n ${namespace}`,
    cause: error,
  })
}
