/**
 * Finds the management pod and its SSH credentials the way a person would, in as few round trips as possible:
 * one list of the namespace's pods (filtered here, so charts with other labels still match), and the credentials
 * Secret fetched speculatively at the same time.
 */
import type { V1Namespace, V1Pod, V1PodList, V1Secret } from '@kubernetes/client-node'
import { AccessError, ExitCode } from '../errors.js'
import { isNotFound, KubeApiError } from '../kube/api-errors.js'
import type { KubeClient } from '../kube/client.js'
import type { Prompter } from '../terminal/prompter.js'
import {
  type FieldNames,
  passwordLoginFromPod,
  readSecretCredentials,
  secretReferences,
  wellKnownSecretNames,
} from './secret-credentials.js'
import { chooseContainer, choosePod, describeNotReady, type PodSummary, workloadOf } from './select-pod.js'

export const managementPodName = 'management-pod'

export interface TargetOptions {
  /** Default: the namespace of the connection (-n, AKM_NAMESPACE, the context's, akamas). */
  namespace?: string | undefined
  /** --pod: use exactly this pod. */
  pod?: string | undefined
  /** --selector: a label selector instead of our own matching. */
  selector?: string | undefined
  /** --container. */
  container?: string | undefined
}

export interface ManagementPod {
  namespace: string
  pod: PodSummary
  container: string
}

/** A pod that looks like the management pod when no --selector is given: its labels, its Deployment, its name. */
export function isManagementPod(pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {}
  return (
    labels.app === managementPodName ||
    labels['app.kubernetes.io/name'] === managementPodName ||
    labels['app.kubernetes.io/component'] === managementPodName ||
    workloadOf(pod) === `Deployment/${managementPodName}` ||
    (pod.metadata?.name ?? '').startsWith(`${managementPodName}-`)
  )
}

/**
 * The management pod exists but is not running and ready. It carries the pod, because its spec still says which
 * Secret holds the credentials: `password` can answer while the pod restarts; shell and ssh cannot.
 */
export class PodNotReadyError extends AccessError {
  override readonly name = 'PodNotReadyError'
  constructor(
    readonly target: ManagementPod,
    hint: string,
  ) {
    super(`management pod ${target.pod.name} is not ready: ${describeNotReady(target.pod)}`, {
      exitCode: ExitCode.podNotReady,
      hint,
    })
  }
}

export async function findManagementPod(
  client: KubeClient,
  options: TargetOptions,
  prompter: Prompter | undefined,
): Promise<ManagementPod> {
  const namespace = options.namespace ?? client.connection.namespace.value
  const podsPath = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`
  let pods: V1Pod[]
  if (options.pod) {
    try {
      pods = [await client.request<V1Pod>('GET', `${podsPath}/${encodeURIComponent(options.pod)}`)]
    } catch (error) {
      if (!isNotFound(error)) throw error
      await assertNamespaceExists(client, namespace)
      throw new AccessError(`pod ${options.pod} not found in namespace ${namespace}`, {
        exitCode: ExitCode.podNotFound,
        hint: `list the pods with: kubectl get pods -n ${namespace}`,
      })
    }
  } else {
    const list = await listPods(client, podsPath, options.selector)
    pods = options.selector ? list.items : list.items.filter(isManagementPod)
  }

  const choice = choosePod(pods)
  let chosen: PodSummary
  switch (choice.kind) {
    case 'none':
      await assertNamespaceExists(client, namespace)
      throw new AccessError(
        `no management pod in namespace ${namespace}${options.selector ? ` matches ${options.selector}` : ''}`,
        {
          exitCode: ExitCode.podNotFound,
          hint: `is Akamas installed with managementPod.enabled=true in this namespace? Pick a pod with --pod or --selector (kubectl get pods -n ${namespace})`,
        },
      )
    case 'not-ready':
      throw new PodNotReadyError(
        { namespace, pod: choice.pod, container: containerOf(choice.pod, options.container) },
        `see why with: kubectl describe pod ${choice.pod.name} -n ${namespace}`,
      )
    case 'ambiguous':
      chosen = await pickCandidate(choice.candidates, namespace, prompter)
      break
    case 'chosen':
      chosen = choice.pod
  }
  return { namespace, pod: chosen, container: containerOf(chosen, options.container) }
}

function containerOf(pod: PodSummary, requested: string | undefined): string {
  const container = chooseContainer(pod, requested)
  if (!container) {
    throw new AccessError(`pod ${pod.name} has no container named ${requested}`, {
      exitCode: ExitCode.usage,
      hint: `its containers are: ${pod.containers.join(', ')}`,
    })
  }
  return container
}

async function listPods(client: KubeClient, podsPath: string, selector: string | undefined): Promise<V1PodList> {
  try {
    return await client.request<V1PodList>('GET', podsPath, { query: selector ? { labelSelector: selector } : {} })
  } catch (error) {
    // The API server is the judge of selector syntax; its 400 is the user's typo, not a bug of ours.
    if (selector && error instanceof KubeApiError && error.httpStatus === 400) {
      throw new AccessError(`invalid --selector "${selector}": ${error.message}`, {
        exitCode: ExitCode.usage,
        hint: "use kubectl's label selector syntax, e.g. --selector app=management-pod,tier!=db",
      })
    }
    throw error
  }
}

async function pickCandidate(
  candidates: PodSummary[],
  namespace: string,
  prompter: Prompter | undefined,
): Promise<PodSummary> {
  const list = candidates.map((pod) => `${pod.name} (${pod.workload})`).join(', ')
  if (!prompter?.canPrompt) {
    throw new AccessError(`several pods look like the management pod in namespace ${namespace}: ${list}`, {
      exitCode: ExitCode.usage,
      hint: `choose one with --pod ${candidates[0]?.name}`,
    })
  }
  const name = await prompter.select(
    'Several pods look like the management pod. Which one?',
    candidates.map((pod) => ({ value: pod.name, label: pod.name, description: pod.workload })),
  )
  return candidates.find((pod) => pod.name === name) ?? candidates[0]!
}

async function assertNamespaceExists(client: KubeClient, namespace: string): Promise<void> {
  try {
    await client.request<V1Namespace>('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}`)
  } catch (error) {
    if (isNotFound(error)) {
      throw new AccessError(`namespace ${namespace} not found`, {
        exitCode: ExitCode.namespaceNotFound,
        hint: 'pass the namespace of the Akamas installation with -n (or set AKM_NAMESPACE); list them with: kubectl get namespaces',
      })
    }
    // Not allowed to read namespaces (common for namespaced users): we can't tell, so say nothing more.
    if (error instanceof KubeApiError && error.httpStatus === 403) return
    throw error
  }
}

// ---- credentials ----

export interface CredentialOptions extends FieldNames {
  /** --secret: read this Secret. */
  secret?: string
}

export interface Credentials {
  password: string | undefined
  privateKey: string | undefined
  /** Where they came from, for messages: `Secret akamas/management-pod`, `file /work/akamas_password in pod …`. */
  source: string
  /** Whether sshd accepts passwords, when we can tell (the pod's ALLOW_PASSWORD, or the Secret's shape). */
  passwordLogin: boolean | undefined
  /** The Secret keys they were read from: a password key can exist and be empty. */
  passwordField?: string | undefined
  privateKeyField?: string | undefined
  /** Why a value that is in the Secret could not be used, while the other one can (see readSecretCredentials). */
  unusable?: { password?: AccessError; privateKey?: AccessError }
  /** What to say when neither can be used, where the Secret's advice does not apply (a docker-compose install). */
  unusableHint?: { message: string; hint: string }
}

/**
 * Starts fetching the likely Secret before the pod is known, so that finding the pod and reading its Secret cost
 * one round trip, not two.
 */
export function prefetchSecret(
  client: KubeClient,
  namespace: string,
  options: CredentialOptions,
): Promise<SecretFetch> {
  return fetchSecret(client, namespace, options.secret ?? wellKnownSecretNames[0]!)
}

type SecretFetch = { secret: V1Secret } | { error: unknown }

function fetchSecret(client: KubeClient, namespace: string, name: string): Promise<SecretFetch> {
  return client
    .request<V1Secret>('GET', `/api/v1/namespaces/${encodeURIComponent(namespace)}/secrets/${encodeURIComponent(name)}`)
    .then(
      (secret) => ({ secret }),
      (error: unknown) => ({ error }),
    )
}

export async function findCredentials(
  client: KubeClient,
  namespace: string,
  /** The management pod, when known: the Secrets it references are tried first. */
  target: ManagementPod | undefined,
  options: CredentialOptions,
  prefetched: Promise<SecretFetch> | undefined,
): Promise<Credentials> {
  const pod = target?.pod.pod
  const references = secretReferences(pod, target?.container)
  const passwordLoginInPod = passwordLoginFromPod(pod, target?.container)
  const names = options.secret
    ? [options.secret]
    : [...new Set([...references.map((reference) => reference.name), ...wellKnownSecretNames])]
  const prefetchedName = options.secret ?? wellKnownSecretNames[0]
  let forbidden: KubeApiError | undefined
  // A Secret that exists but holds nothing we recognise: reported if no other one does, as it is most likely the
  // right Secret with its keys named differently (or emptied), which "not found" would hide.
  let unrecognised: { name: string; keys: string[] } | undefined

  for (const name of names) {
    const fetched =
      name === prefetchedName && prefetched ? await prefetched : await fetchSecret(client, namespace, name)
    if ('error' in fetched) {
      if (isNotFound(fetched.error)) continue
      if (fetched.error instanceof KubeApiError && fetched.error.httpStatus === 403) {
        forbidden ??= fetched.error
        continue
      }
      throw fetched.error
    }
    const found = readSecretCredentials(
      fetched.secret,
      options,
      references.filter((reference) => reference.name === name),
    )
    if (found.passwordField === undefined && found.privateKeyField === undefined) {
      unrecognised ??= { name, keys: Object.keys(fetched.secret.data ?? {}) }
      if (options.secret) break
      continue
    }
    return {
      password: found.password,
      privateKey: found.privateKey,
      source: `Secret ${namespace}/${name}`,
      passwordLogin: passwordLoginInPod ?? (found.password !== undefined ? undefined : false),
      passwordField: found.passwordField,
      privateKeyField: found.privateKeyField,
      unusable: found.unusable,
    }
  }

  if (unrecognised && !forbidden) {
    throw new AccessError(`Secret ${namespace}/${unrecognised.name} holds neither an SSH password nor a private key`, {
      exitCode: ExitCode.badCredentials,
      hint: `name its keys with --password-field or --key-field (it has: ${unrecognised.keys.join(', ') || 'no keys'})`,
    })
  }
  if (forbidden) throw forbidden
  throw new AccessError(
    options.secret
      ? `Secret ${options.secret} not found in namespace ${namespace}`
      : `no Secret with the management pod's SSH credentials in namespace ${namespace}`,
    {
      exitCode: ExitCode.secretNotFound,
      hint: options.secret
        ? `list the Secrets with: kubectl get secrets -n ${namespace}`
        : `name it with --secret (tried: ${names.join(', ')})`,
    },
  )
}
