/**
 * The links of the chain from the user to the management pod's sshd, one small function each: kubeconfig, API
 * server, namespace, RBAC, pod, Secret, sshd, host key, login, and the `management-pod` Service that in-cluster
 * clients use. Each returns a CheckOutcome and leaves what it found in the DoctorContext for the checks after it.
 * Requests are started early and shared (ClusterQueries), so that the whole cluster side costs about one round trip
 * plus the SSH probes. Nothing secret is ever put in a detail or hint.
 */
import type { Duplex } from 'node:stream'
import type { V1Namespace, V1Pod, V1PodList, V1Service } from '@kubernetes/client-node'
import { AccessError, ExitCode } from '../errors.js'
import { type AccessAnswer, type AccessQuestion, canI } from '../kube/access-review.js'
import { isNotFound, KubeApiError } from '../kube/api-errors.js'
import type { KubeClient } from '../kube/client.js'
import { formatDuration } from '../kube/duration.js'
import { displayPath } from '../kube/kubeconfig.js'
import { authKind, type KubeConnection } from '../kube/types.js'
import type { Logger } from '../log.js'
import {
  fingerprint,
  type HostKeyCheck,
  hostKeyAlias,
  keyType,
  keyTypeLabel,
  checkHostKey as lookUpHostKey,
} from '../ssh/known-hosts.js'
import { connectSsh, fetchHostKey, preparePrivateKey, type SshCredentials } from '../ssh/ssh-client.js'
import {
  type CredentialOptions,
  findCredentials,
  isManagementPod,
  type ManagementPod,
  managementPodName,
  prefetchSecret,
} from '../target/find-target.js'
import { chooseContainer, choosePod, describeNotReady, type PodSummary } from '../target/select-pod.js'
import type { Io } from '../terminal/io.js'
import { openPodStream } from '../tunnel/pod-stream.js'
import { failedWith } from './runner.js'
import { readSshBanner } from './ssh-banner.js'
import type { CheckId, CheckOutcome } from './types.js'

export interface DoctorOptions {
  /** --pod, --selector, --container (the namespace is the connection's: -n, AKM_NAMESPACE, the context's). */
  target: { pod?: string | undefined; selector?: string | undefined; container?: string | undefined }
  credentials: CredentialOptions
  /** The local port `ssh`'s tunnel prefers (0: any). */
  localPort: number
  /** sshd's port in the pod. */
  remotePort: number
  user: string
  knownHostsFile: string
  /** For each SSH step (banner, key exchange, login). */
  sshTimeoutMs: number
}

export interface DoctorContext {
  readonly options: DoctorOptions
  readonly io: Io
  readonly logger: Logger
  readonly kube: () => Promise<KubeClient>
  /** For `~` in paths shown. */
  readonly homeDir: string | undefined
  /** Streams and connections to close when the run ends, whatever happened. */
  readonly resources: Duplex[]
  // What the checks found, for the checks after them:
  cluster?: ClusterQueries
  /** The management pod, found (ready or not). */
  pod?: ManagementPod
  credentials?: LoginCredentials
  /** A connection to sshd whose banner was read (and put back), for the key exchange. */
  sshStream?: Duplex
  hostKey?: { blob: Buffer; status: HostKeyCheck['status'] }
}

/** What the SSH login may use: only what passed the credentials check. */
export interface LoginCredentials {
  source: string
  /** A key ssh2 can load without a passphrase. */
  privateKey: string | undefined
  /** A password sshd accepts (password login is not disabled). */
  password: string | undefined
  /** Why the key cannot be used, when there is one. */
  keyProblem: 'needs-passphrase' | 'unusable' | undefined
}

export const ok = (detail: string): CheckOutcome => ({ status: 'pass', detail })
export const warn = (detail: string, hint?: string): CheckOutcome => ({
  status: 'warn',
  detail,
  ...(hint ? { hint } : {}),
})
export const fail = (detail: string, hint: string, exitCode: number): CheckOutcome => ({
  status: 'fail',
  detail,
  hint,
  exitCode,
})
const skip = (detail: string, because: CheckId): CheckOutcome => ({
  status: 'skip',
  detail: `skipped: ${detail}`,
  skippedBecause: because,
})

// ---------------------------------------------------------------------------------------------------------------
// Requests, started together and shared

/** Memoizes a request; its failure is kept for whoever awaits it (and never reported as unhandled). */
function lazy<T>(run: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined
  return () => {
    if (!promise) {
      promise = run()
      promise.catch(() => {})
    }
    return promise
  }
}

export interface PermissionQuestion extends AccessQuestion {
  /** `get secrets`, `create pods/exec`. */
  readonly label: string
  /** What it is needed for, for the report. */
  readonly usedBy: string
  /** Missing it is a warning, not a failure: only a check of doctor's own needs it. */
  readonly optional?: boolean
}

/**
 * What akm-access needs in the namespace. The API server authorizes a WebSocket upgrade (exec, port-forward) as `get`
 * and SPDY as `create`, and newer versions ask for `create` on WebSockets too: both verbs are asked.
 */
export const permissionQuestions: readonly PermissionQuestion[] = [
  { verb: 'list', resource: 'pods', label: 'list pods', usedBy: 'finding the management pod' },
  { verb: 'get', resource: 'pods', label: 'get pods', usedBy: 'reading the management pod (--pod)' },
  { verb: 'get', resource: 'secrets', label: 'get secrets', usedBy: 'reading the SSH credentials' },
  { verb: 'create', resource: 'pods', subresource: 'exec', label: 'create pods/exec', usedBy: 'akm-access shell' },
  { verb: 'get', resource: 'pods', subresource: 'exec', label: 'get pods/exec', usedBy: 'akm-access shell' },
  {
    verb: 'create',
    resource: 'pods',
    subresource: 'portforward',
    label: 'create pods/portforward',
    usedBy: 'akm-access ssh and its tunnel',
  },
  {
    verb: 'get',
    resource: 'pods',
    subresource: 'portforward',
    label: 'get pods/portforward',
    usedBy: 'akm-access ssh and its tunnel',
  },
  {
    verb: 'get',
    resource: 'services',
    label: 'get services',
    usedBy: 'checking the management-pod Service',
    optional: true,
  },
]

export type PermissionAnswer =
  | { question: PermissionQuestion; answer: AccessAnswer }
  | { question: PermissionQuestion; error: unknown }

export class ClusterQueries {
  constructor(
    readonly client: KubeClient,
    readonly namespace: string,
    private readonly options: DoctorOptions,
  ) {}

  private get namespacePath(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}`
  }

  readonly version = lazy(() => this.client.request<{ gitVersion?: string }>('GET', '/version'))
  /** An authenticated request (discovery): /version is public on most clusters, so it proves nothing about auth. */
  readonly api = lazy(async () => {
    const started = performance.now()
    await this.client.request('GET', '/api')
    return Math.round(performance.now() - started)
  })
  readonly namespaceObject = lazy(() => this.client.request<V1Namespace>('GET', this.namespacePath))
  /** Every SelfSubjectAccessReview at once. */
  readonly permissions = lazy(() =>
    Promise.all(
      permissionQuestions.map(
        (question): Promise<PermissionAnswer> =>
          canI(this.client, { ...question, namespace: this.namespace }).then(
            (answer) => ({ question, answer }),
            (error: unknown) => ({ question, error }),
          ),
      ),
    ),
  )
  readonly pods = lazy(async (): Promise<V1Pod[]> => {
    const { pod, selector } = this.options.target
    if (pod) return [await this.client.request<V1Pod>('GET', `${this.namespacePath}/pods/${encodeURIComponent(pod)}`)]
    const list = await this.client.request<V1PodList>('GET', `${this.namespacePath}/pods`, {
      query: selector ? { labelSelector: selector } : {},
    })
    return selector ? list.items : list.items.filter(isManagementPod)
  })
  readonly secret = lazy(() => prefetchSecret(this.client, this.namespace, this.options.credentials))
  readonly service = lazy(() =>
    this.client.request<V1Service>('GET', `${this.namespacePath}/services/${encodeURIComponent(managementPodName)}`),
  )

  /** Sends every request now: they are independent, and the checks then only wait for the answers. */
  startAll(): void {
    void this.version().catch(() => {})
    void this.api().catch(() => {})
    void this.namespaceObject().catch(() => {})
    void this.permissions()
    void this.pods().catch(() => {})
    void this.secret()
    void this.service().catch(() => {})
  }
}

/** The answer to one question, or undefined when it could not be asked. */
async function permission(context: DoctorContext, label: string): Promise<AccessAnswer | undefined> {
  const answers = await context.cluster?.permissions()
  const found = answers?.find((entry) => entry.question.label === label)
  return found && 'answer' in found ? found.answer : undefined
}

async function denied(context: DoctorContext, label: string): Promise<boolean> {
  const answer = await permission(context, label)
  return answer !== undefined && !answer.allowed
}

function cluster(context: DoctorContext): ClusterQueries {
  if (!context.cluster) throw new Error('the kubeconfig check did not run')
  return context.cluster
}

// ---------------------------------------------------------------------------------------------------------------
// 1. kubeconfig

export async function checkKubeconfig(context: DoctorContext): Promise<CheckOutcome> {
  let client: KubeClient
  try {
    client = await context.kube()
  } catch (error) {
    return failedWith(error)
  }
  const { connection } = client
  context.cluster = new ClusterQueries(client, connection.namespace.value, context.options)
  context.cluster.startAll()
  const show = (file: string) => displayPath(file, context.homeDir)
  const { origin } = connection
  const lines = [
    origin.kind === 'in-cluster'
      ? `the pod's service account (${origin.serviceAccountDir})`
      : `${origin.files.map(show).join(', ')} (${origin.source === 'default' ? 'the default' : `from ${origin.from}`})`,
    connection.context
      ? `context ${connection.context.value} (${connection.context.from})`
      : 'no context (in-cluster configuration)',
    `namespace ${connection.namespace.value} (${connection.namespace.from})`,
    `cluster ${connection.cluster.name}, user ${connection.user.name || '(none)'} (${describeAuth(connection)})`,
  ]
  return ok(lines.join('\n'))
}

function describeAuth(connection: KubeConnection): string {
  const { user } = connection
  switch (authKind(user)) {
    case 'token':
      return user.name === 'in-cluster'
        ? 'service account token'
        : `bearer token${user.tokenSource && user.tokenSource !== 'token' ? ` from ${user.tokenSource}` : ''}`
    case 'basic':
      return 'basic auth'
    case 'client-certificate':
      return 'client certificate'
    case 'exec':
      return `credential plugin ${user.exec!.command.split(/[/\\]/).pop()}`
    default:
      return 'no credentials'
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 2. API server

export async function checkApiServer(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const { client } = queries
  const { connection } = client
  const [version, api] = await Promise.allSettled([queries.version(), queries.api()])
  let elapsed: string
  let authNote = ''
  if (api.status === 'rejected') {
    const error = api.reason
    const anonymous = authKind(connection.user) === 'none'
    if (!(error instanceof KubeApiError && error.httpStatus === 403)) return failedWith(error)
    if (anonymous) {
      return fail(
        `the API server at ${connection.cluster.server} does not know who you are: the kubeconfig has no credentials for user "${connection.user.name}", and anonymous requests are forbidden`,
        'get a kubeconfig with credentials for this cluster (e.g. from your cloud CLI)',
        ExitCode.unauthorized,
      )
    }
    // A 403 on discovery still proves that the credentials were accepted.
    elapsed = ''
    authNote = ' (accepted, although API discovery is forbidden to you)'
  } else {
    elapsed = ` (answered in ${api.value} ms)`
  }
  const gitVersion = version.status === 'fulfilled' ? version.value?.gitVersion : undefined
  const { cluster: config } = connection
  const secure = client.serverUrl.protocol === 'https:'
  let tls: string
  let insecure = false
  if (!secure) tls = 'plain HTTP: no TLS, and no credentials are sent (as kubectl)'
  else if (config.insecureSkipTlsVerify) {
    tls = "TLS: the server's certificate is NOT verified (insecure-skip-tls-verify)"
    insecure = true
  } else {
    const against = config.certificateAuthorityData
      ? config.certificateAuthorityFile
        ? `certificate-authority ${displayPath(config.certificateAuthorityFile, context.homeDir)}`
        : 'the certificate-authority-data of the kubeconfig'
      : "the system's trusted CAs"
    tls = `TLS verified against ${against}${config.tlsServerName ? `, as ${config.tlsServerName}` : ''}`
  }
  const lines = [
    `${gitVersion ? `Kubernetes ${gitVersion}` : 'Kubernetes (version not disclosed)'} at ${config.server}${elapsed}`,
    `authenticated with ${describeAuth(connection)}${authNote}`,
    tls,
    client.proxy ? `proxy ${client.proxy.display} (from ${client.proxy.from})` : 'no proxy',
    `request timeout ${client.requestTimeoutMs > 0 ? formatDuration(client.requestTimeoutMs) : 'none'} (--request-timeout)`,
  ]
  if (insecure) {
    return warn(
      lines.join('\n'),
      `anyone between you and the cluster could read your credentials: put the cluster's CA in the kubeconfig (certificate-authority-data) and remove insecure-skip-tls-verify from cluster "${config.name}"`,
    )
  }
  return ok(lines.join('\n'))
}

// ---------------------------------------------------------------------------------------------------------------
// 3. namespace

export async function checkNamespace(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const { namespace } = queries
  const from = queries.client.connection.namespace.from
  try {
    const object = await queries.namespaceObject()
    if (object?.status?.phase === 'Terminating') {
      return fail(
        `namespace ${namespace} is being deleted`,
        'the Akamas installation in it is going away; pass another namespace with -n',
        ExitCode.namespaceNotFound,
      )
    }
    return ok(`${namespace} exists`)
  } catch (error) {
    if (isNotFound(error)) {
      return fail(
        `namespace ${namespace} (${from}) does not exist`,
        'pass the namespace of the Akamas installation with -n (or set AKM_NAMESPACE); list them with: kubectl get namespaces',
        ExitCode.namespaceNotFound,
      )
    }
    if (error instanceof KubeApiError && error.httpStatus === 403) {
      // Common for users who may use only their namespace; the checks after this one will tell.
      return warn(`cannot tell whether namespace ${namespace} exists: you may not get namespaces`)
    }
    return failedWith(error)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 4. permissions

export async function checkPermissions(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  return evaluatePermissions(queries.namespace, await queries.permissions())
}

/** The verdict on the SelfSubjectAccessReviews: which permissions are missing, and the Role that would grant them. */
export function evaluatePermissions(namespace: string, answers: readonly PermissionAnswer[]): CheckOutcome {
  const unasked = answers.filter((entry) => 'error' in entry)
  if (unasked.length === answers.length) {
    const first = unasked[0]
    const reason = first && 'error' in first && first.error instanceof Error ? first.error.message : 'no answer'
    return warn(
      `cannot ask the API server about permissions (SelfSubjectAccessReview): ${reason}`,
      'the checks below show what fails; `kubectl auth can-i --list -n ' + namespace + '` lists what you may do',
    )
  }
  const refused = answers.filter((entry) => 'answer' in entry && !entry.answer.allowed).map((entry) => entry.question)
  const required = refused.filter((question) => !question.optional)
  const allowed = answers.filter((entry) => 'answer' in entry && entry.answer.allowed).map((e) => e.question.label)
  const lines: string[] = []
  if (refused.length > 0) {
    lines.push(`you may not ${refused.map((question) => question.label).join(', ')} in namespace ${namespace}`)
    for (const question of refused) lines.push(`${question.label} is needed for ${question.usedBy}`)
  }
  if (allowed.length > 0) lines.push(`allowed: ${allowed.join(', ')}`)
  if (unasked.length > 0)
    lines.push(`not asked (no answer): ${unasked.map((entry) => entry.question.label).join(', ')}`)
  if (required.length > 0) {
    return fail(lines.join('\n'), roleHint(namespace, required), ExitCode.forbidden)
  }
  if (refused.length > 0 || unasked.length > 0) {
    return warn(lines.join('\n'), refused.length > 0 ? roleHint(namespace, refused) : undefined)
  }
  return ok(`all allowed in namespace ${namespace}: ${allowed.join(', ')}`)
}

function roleHint(namespace: string, missing: readonly PermissionQuestion[]): string {
  const byResource = new Map<string, string[]>()
  for (const question of missing) {
    const resource = question.subresource ? `${question.resource}/${question.subresource}` : question.resource
    byResource.set(resource, [...(byResource.get(resource) ?? []), question.verb])
  }
  const rules = [...byResource].map(([resource, verbs]) => `${verbs.map((v) => `"${v}"`).join(', ')} on "${resource}"`)
  const first = missing[0]!
  const canI = [
    'kubectl auth can-i',
    first.verb,
    first.resource,
    ...(first.subresource ? [`--subresource=${first.subresource}`] : []),
    '-n',
    namespace,
  ].join(' ')
  return `ask your cluster administrator for a Role in namespace ${namespace} that allows ${rules.join('; ')} (check with \`${canI}\`)`
}

// ---------------------------------------------------------------------------------------------------------------
// 5. the management pod

export async function checkPod(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const { namespace } = queries
  const { pod: named, selector, container } = context.options.target
  const needed = named ? 'get pods' : 'list pods'
  if (await denied(context, needed)) return skip(`you may not ${needed} in namespace ${namespace}`, 'permissions')
  let pods: V1Pod[]
  try {
    pods = await queries.pods()
  } catch (error) {
    if (named && isNotFound(error)) {
      return fail(
        `pod ${named} (--pod) not found in namespace ${namespace}`,
        `list the pods with: kubectl get pods -n ${namespace}`,
        ExitCode.podNotFound,
      )
    }
    return failedWith(error)
  }
  const choice = choosePod(pods)
  let summary: PodSummary
  let ambiguous: PodSummary[] | undefined
  switch (choice.kind) {
    case 'none':
      return fail(
        `no management pod in namespace ${namespace}${selector ? ` matches ${selector}` : ''}`,
        `is Akamas installed with managementPod.enabled=true in this namespace? Pick a pod with --pod or --selector (kubectl get pods -n ${namespace})`,
        ExitCode.podNotFound,
      )
    case 'not-ready':
      summary = choice.pod
      break
    case 'ambiguous':
      summary = choice.candidates[0]!
      ambiguous = choice.candidates
      break
    case 'chosen':
      summary = choice.pod
  }
  const chosenContainer = chooseContainer(summary, container)
  if (!chosenContainer) {
    return fail(
      `pod ${summary.name} has no container named ${container}`,
      `its containers are: ${summary.containers.join(', ')}`,
      ExitCode.usage,
    )
  }
  context.pod = { namespace, pod: summary, container: chosenContainer }
  const where = `${summary.workload}, container ${chosenContainer}, created ${age(summary.createdAt)} ago`
  if (choice.kind === 'not-ready') {
    const others = choice.others > 0 ? ` (and ${choice.others} other pod${choice.others === 1 ? '' : 's'})` : ''
    return fail(
      [`${summary.name}${others} is not ready: ${describeNotReady(summary)}`, where].join('\n'),
      `see why with: kubectl describe pod ${summary.name} -n ${namespace}` +
        (summary.restarts > 0 ? ` and kubectl logs ${summary.name} -n ${namespace} --previous` : ''),
      ExitCode.podNotReady,
    )
  }
  const restarts = `${summary.restarts === 1 ? '1 restart' : `${summary.restarts} restarts`}${summary.lastTermination ? `, last exit: ${summary.lastTermination}` : ''}`
  const facts = [where, restarts]
  const headline = `${summary.name} is Running and Ready`
  if (ambiguous) {
    return warn(
      [
        `${headline}; several pods look like the management pod: ${ambiguous.map((pod) => `${pod.name} (${pod.workload})`).join(', ')}`,
        ...facts,
      ].join('\n'),
      `the checks below use ${summary.name}; pick another with --pod`,
    )
  }
  return ok([headline, ...facts].join('\n'))
}

function age(createdAt: number): string {
  if (!createdAt) return 'at an unknown time'
  const seconds = Math.max(0, Math.floor((Date.now() - createdAt) / 1000))
  if (seconds < 120) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 120) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  return hours < 48 ? `${hours}h` : `${Math.floor(hours / 24)}d`
}

// ---------------------------------------------------------------------------------------------------------------
// 6. credentials

export async function checkCredentials(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const { namespace } = queries
  if (await denied(context, 'get secrets'))
    return skip(`you may not get secrets in namespace ${namespace}`, 'permissions')
  const found = await findCredentials(
    queries.client,
    namespace,
    context.pod,
    context.options.credentials,
    queries.secret(),
  )
  const fields = found as { passwordField?: string | undefined; privateKeyField?: string | undefined }
  const field = (name: string | undefined) => (name ? ` (key "${name}")` : '')

  let keyFact: string
  let usableKey: string | undefined
  let keyProblem: LoginCredentials['keyProblem']
  if (found.privateKey === undefined) keyFact = 'no private key'
  else {
    const check = await preparePrivateKey(found.privateKey, undefined)
    if (check.ok) {
      usableKey = check.key
      keyFact = `a private key${field(fields.privateKeyField)}`
    } else if (check.reason === 'unusable') {
      keyProblem = 'unusable'
      keyFact = `a malformed private key${field(fields.privateKeyField)}: ${check.message}`
    } else {
      keyProblem = 'needs-passphrase'
      keyFact = `a private key${field(fields.privateKeyField)} encrypted with a passphrase`
    }
  }
  const emptyPassword = found.password === undefined && fields.passwordField !== undefined
  const passwordFact =
    found.password !== undefined
      ? `a password${field(fields.passwordField)}`
      : emptyPassword
        ? `an empty password${field(fields.passwordField)}`
        : 'no password'
  const login =
    found.passwordLogin === true
      ? 'password login is enabled (ALLOW_PASSWORD)'
      : found.passwordLogin === false
        ? 'password login is disabled (key only)'
        : 'whether sshd accepts passwords is not known'
  const usablePassword = found.passwordLogin === false ? undefined : found.password
  context.credentials = { source: found.source, privateKey: usableKey, password: usablePassword, keyProblem }
  const detail = [`${found.source} holds ${passwordFact} and ${keyFact}`, login].join('\n')
  const keyHint = `the Secret must hold an OpenSSH, PEM (RSA/EC) or PKCS#8 private key: fix ${fields.privateKeyField ? `"${fields.privateKeyField}"` : 'it'} in ${found.source}, or name another key with --key-field`

  if (usableKey !== undefined) return ok(detail)
  if (usablePassword !== undefined) {
    if (keyProblem === 'unusable') return warn(detail, `the password works, but not the key: ${keyHint}`)
    return ok(detail)
  }
  if (keyProblem === 'needs-passphrase') {
    return warn(detail, 'akm-access ssh asks for the passphrase in a terminal, or reads it with --passphrase-file')
  }
  if (keyProblem === 'unusable') {
    const alsoPassword = emptyPassword ? `; the password${field(fields.passwordField)} is empty too` : ''
    return fail(detail, `${keyHint}${alsoPassword}`, ExitCode.badCredentials)
  }
  if (found.password !== undefined) {
    return fail(
      detail,
      'sshd will refuse the password and there is no key: add the private key to the Secret, or name it with --secret',
      ExitCode.passwordDisabled,
    )
  }
  return fail(
    detail,
    emptyPassword
      ? `set the password in ${found.source}, or name the right key with --password-field`
      : 'name the keys that hold them with --password-field or --key-field',
    ExitCode.badCredentials,
  )
}

// ---------------------------------------------------------------------------------------------------------------
// 7. sshd, through a port-forward

export async function checkSshd(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const target = context.pod!
  const { remotePort } = context.options
  const where = `${target.pod.name}:${remotePort}`
  if (await denied(context, 'get pods/portforward')) {
    return skip(`you may not get pods/portforward in namespace ${queries.namespace}`, 'permissions')
  }
  const sshdHint =
    `sshd does not answer in the pod: see its messages with kubectl logs ${target.pod.name} -n ${queries.namespace}; ` +
    `deleting the pod (kubectl delete pod ${target.pod.name} -n ${queries.namespace}) starts a fresh one`
  try {
    const stream = await openPodStream(
      queries.client,
      { namespace: queries.namespace, podName: target.pod.name },
      remotePort,
    )
    // A late error (the pod goes away) must not become an uncaught exception between two checks.
    stream.on('error', () => {})
    context.resources.push(stream)
    const banner = await readSshBanner(stream, { timeoutMs: context.options.sshTimeoutMs, where })
    context.sshStream = stream
    return ok(`${banner.line}\nfrom ${where}, through a port-forward over the API server`)
  } catch (error) {
    if (error instanceof AccessError && keepsItsCategory(error.exitCode)) return failedWith(error)
    const message = error instanceof Error ? error.message : String(error)
    return fail(`nothing answers as sshd on ${where}: ${message}`, sshdHint, ExitCode.sshUnreachable)
  }
}

/** Failures of the API server itself (access, network) keep their own exit codes; the rest is sshd's. */
function keepsItsCategory(exitCode: number): boolean {
  return [ExitCode.forbidden, ExitCode.unauthorized, ExitCode.unreachable, ExitCode.tls].includes(exitCode as never)
}

// ---------------------------------------------------------------------------------------------------------------
// 8. host key

export async function checkSshHostKey(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const stream = context.sshStream!
  const target = context.pod!
  const blob = await fetchHostKey(stream, { timeoutMs: context.options.sshTimeoutMs, logger: context.logger })
  const alias = hostKeyAlias(queries.client.connection.cluster.server, queries.namespace, target.pod.workload)
  return judgeHostKey(context, blob, alias, 'pod')
}

/**
 * The host key against known_hosts, under `alias`; records what was found in `context.hostKey` for the login check.
 * Shared with the docker-compose checks (`noun`: who sent the key).
 */
export function judgeHostKey(
  context: Pick<DoctorContext, 'options' | 'homeDir' | 'hostKey'>,
  blob: Buffer,
  alias: string,
  noun: 'pod' | 'container',
): CheckOutcome {
  const file = context.options.knownHostsFile
  const shown = displayPath(file, context.homeDir)
  const key = `${keyTypeLabel(keyType(blob))} key ${fingerprint(blob)}`
  let known: HostKeyCheck
  try {
    known = lookUpHostKey(file, alias, blob)
  } catch (error) {
    // The file itself is the known_hosts check's business (it fails there, with its own hint).
    context.hostKey = { blob, status: 'unknown' }
    return warn(`${key}\nnot compared: ${shown} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`)
  }
  context.hostKey = { blob, status: known.status }
  switch (known.status) {
    case 'known':
      return ok(`${key}\nmatches ${shown} (${alias})`)
    case 'unknown':
      return warn(
        `${key}\nnot in ${shown} yet (${alias})`,
        'akm-access ssh shows this fingerprint and asks before trusting it (--accept-new-host-key in scripts); compare it with the one your administrator gives',
      )
    case 'changed':
      return fail(
        `the host key has CHANGED: the ${noun} sent the ${key}, but ${shown}:${known.line} holds another ${keyTypeLabel(known.knownType)} key for ${alias}\n` +
          'IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY (a man-in-the-middle), or the host key was just regenerated',
        `only if you know why the key changed, remove the old one: ssh-keygen -f '${file}' -R '${alias}' (or akm-access ssh --forget-host-key)`,
        ExitCode.hostKey,
      )
  }
}

// ---------------------------------------------------------------------------------------------------------------
// 9. login

export async function checkSshLogin(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const target = context.pod!
  const { remotePort } = context.options
  return tryLogin(context, () =>
    openPodStream(queries.client, { namespace: queries.namespace, podName: target.pod.name }, remotePort),
  )
}

/**
 * An SSH login with what the credentials check found, on a fresh stream from `open`: the password only to a host
 * whose key is trusted. Shared with the docker-compose checks.
 */
export async function tryLogin(
  context: Pick<DoctorContext, 'options' | 'credentials' | 'hostKey' | 'resources' | 'logger'>,
  open: () => Promise<Duplex>,
): Promise<CheckOutcome> {
  const found = context.credentials!
  const hostKey = context.hostKey!
  const { user } = context.options
  // A password goes only to a host whose key is trusted; a key signature reveals nothing, so it may go to any.
  const password = hostKey.status === 'known' ? found.password : undefined
  const credentials: SshCredentials = {
    ...(found.privateKey ? { privateKey: found.privateKey } : {}),
    ...(password !== undefined ? { password } : {}),
  }
  if (!credentials.privateKey && credentials.password === undefined) {
    if (found.password !== undefined) {
      return warn(
        'not tried: the password is not sent to a host whose key is not trusted yet',
        'run akm-access ssh once: it shows the host key fingerprint and asks to trust it',
      )
    }
    return warn(
      'not tried: the private key is encrypted',
      'akm-access ssh asks for the passphrase in a terminal, or reads it with --passphrase-file',
    )
  }
  const stream = await open()
  stream.on('error', () => {})
  context.resources.push(stream)
  const connection = await connectSsh({
    sock: stream,
    username: user,
    credentials,
    // The key the previous check saw (and judged): a different one now would be a change in between.
    verifyHostKey: async (blob) => blob.equals(hostKey.blob),
    readyTimeoutMs: context.options.sshTimeoutMs,
    logger: context.logger,
  })
  connection.end()
  const method = credentials.privateKey
    ? credentials.password !== undefined
      ? 'the private key or the password'
      : 'the private key'
    : 'the password'
  return ok(`sshd accepted ${user} with ${method} from ${found.source}`)
}

// ---------------------------------------------------------------------------------------------------------------
// 10. the management-pod Service

export async function checkService(context: DoctorContext): Promise<CheckOutcome> {
  const queries = cluster(context)
  const { namespace } = queries
  if (await denied(context, 'get services')) {
    return warn(
      `not checked: you may not get services in namespace ${namespace}`,
      `ask your cluster administrator to check that Service ${managementPodName} selects the management pod and exposes port 22`,
    )
  }
  const target = context.pod
  if (!target) return skip('there is no management pod to compare the Service with', 'pod')
  let service: V1Service
  try {
    service = await queries.service()
  } catch (error) {
    if (isNotFound(error)) {
      return fail(
        `no Service named ${managementPodName} in namespace ${namespace}: workflows and telemetry providers reach the management pod by that name, and fail without it`,
        `reinstall or upgrade Akamas with managementPod.enabled=true, or create it: kubectl expose ${exposeTarget(target)} -n ${namespace} --name ${managementPodName} --port 22 --target-port ${context.options.remotePort}`,
        ExitCode.sshUnreachable,
      )
    }
    return failedWith(error)
  }
  return analyzeService(service, target.pod.pod, target.container, context.options.remotePort)
}

function exposeTarget(target: ManagementPod): string {
  const [kind = 'pod', name = target.pod.name] = target.pod.workload.split('/', 2)
  return kind === 'Deployment' || kind === 'StatefulSet' ? `${kind.toLowerCase()} ${name}` : `pod ${target.pod.name}`
}

/**
 * Does the Service reach sshd in this pod: a selector that matches its labels, and a port whose target is sshd's
 * (by number, or by the name of a container port). Pure, for tests.
 */
export function analyzeService(service: V1Service, pod: V1Pod, container: string, sshPort: number): CheckOutcome {
  const namespace = service.metadata?.namespace ?? pod.metadata?.namespace ?? ''
  const name = service.metadata?.name ?? managementPodName
  const podName = pod.metadata?.name ?? ''
  const selector = service.spec?.selector ?? {}
  const labels = pod.metadata?.labels ?? {}
  const shownSelector = Object.entries(selector)
    .map(([key, value]) => `${key}=${value}`)
    .join(',')
  const ports = service.spec?.ports ?? []
  const shownPorts = ports.map((port) => `${port.port}→${port.targetPort ?? port.port}`).join(', ') || 'none'
  const editHint = `fix it with: kubectl edit service ${name} -n ${namespace}`

  if (Object.keys(selector).length === 0) {
    return warn(
      `Service ${name} has no selector (its endpoints are managed by hand), ports ${shownPorts}`,
      `check that its endpoints point to ${podName}: kubectl get endpoints ${name} -n ${namespace}`,
    )
  }
  const mismatched = Object.entries(selector).filter(([key, value]) => labels[key] !== value)
  if (mismatched.length > 0) {
    return fail(
      `Service ${name} selects ${shownSelector}, which ${podName} does not match (${mismatched
        .map(([key]) => `${key}=${labels[key] ?? '(none)'}`)
        .join(', ')}): in-cluster clients reach no pod by this name`,
      `make the selector match the pod's labels (kubectl get pod ${podName} -n ${namespace} --show-labels); ${editHint}`,
      ExitCode.sshUnreachable,
    )
  }
  const containerPorts = (pod.spec?.containers ?? []).find((c) => c.name === container)?.ports ?? []
  const target = (port: (typeof ports)[number]): number | undefined => {
    const value = port.targetPort ?? port.port
    if (typeof value === 'number') return value
    if (/^\d+$/.test(value)) return Number(value)
    return containerPorts.find((candidate) => candidate.name === value)?.containerPort
  }
  const ssh = ports.find((port) => target(port) === sshPort && (port.protocol ?? 'TCP') === 'TCP')
  if (!ssh) {
    return fail(
      `Service ${name} selects ${podName}, but none of its ports (${shownPorts}) leads to sshd on port ${sshPort}`,
      `add a port with targetPort ${sshPort}; ${editHint}`,
      ExitCode.sshUnreachable,
    )
  }
  const detail = `Service ${name} selects ${podName} (${shownSelector}) and exposes sshd as ${name}:${ssh.port}`
  if (ssh.port !== 22) {
    return warn(detail, `clients that expect ${name}:22 (the default of SSH) will not reach sshd; ${editHint}`)
  }
  return ok(detail)
}
