/**
 * The Kubernetes management pod as a ManagementTarget, wrapping what exists: exec over the API server's WebSocket
 * (session/pod-exec.ts), port-forward streams (tunnel/pod-stream.ts), and the credentials found from the Secret the
 * pod references (target/find-target.ts, usually prefetched while the pod was being found).
 */
import type { KubeClient } from '../kube/client.js'
import { openPodExec } from '../session/pod-exec.js'
import type { RemoteSession } from '../session/remote-session.js'
import type { Credentials, ManagementPod } from '../target/find-target.js'
import { openPodStream, type PodStream, type PodStreamTarget } from '../tunnel/pod-stream.js'
import type { ManagementTarget, TargetExecOptions, TargetStreamOptions } from './target.js'

export interface KubeTarget extends ManagementTarget {
  readonly kind: 'kubernetes'
  readonly client: KubeClient
  readonly namespace: string
  readonly pod: ManagementPod
  readonly stream: PodStreamTarget
  openStream(port: number, options?: TargetStreamOptions): Promise<PodStream>
}

export function kubeTarget(
  client: KubeClient,
  pod: ManagementPod,
  options: {
    knownHostsFile: string
    hostKeyAlias: string
    /** The credentials, fetched (or being fetched) by the caller; absent for those who never need them (shell). */
    credentials?: () => Promise<Credentials>
  },
): KubeTarget {
  const stream: PodStreamTarget = { namespace: pod.namespace, podName: pod.pod.name }
  return {
    kind: 'kubernetes',
    noun: 'pod',
    name: pod.pod.name,
    client,
    namespace: pod.namespace,
    pod,
    stream,
    knownHostsFile: options.knownHostsFile,
    hostKeyAlias: options.hostKeyAlias,
    exec(exec: TargetExecOptions): Promise<RemoteSession> {
      return openPodExec(client, pod, {
        argv: exec.argv,
        tty: exec.tty,
        ...(exec.initialSize ? { initialSize: exec.initialSize } : {}),
        ...(exec.onV4StdinEnd ? { onV4StdinEnd: exec.onV4StdinEnd } : {}),
        ...(exec.keepaliveMs !== undefined ? { keepaliveMs: exec.keepaliveMs } : {}),
      })
    },
    openStream(port, streamOptions = {}) {
      return openPodStream(client, stream, port, {
        ...(streamOptions.keepaliveMs !== undefined ? { pingIntervalMs: streamOptions.keepaliveMs } : {}),
        ...(streamOptions.signal ? { signal: streamOptions.signal } : {}),
      })
    },
    credentials() {
      if (!options.credentials) throw new Error('the credentials of the management pod were not looked up')
      return options.credentials()
    },
  }
}
