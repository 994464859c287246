/**
 * Turns everything that can go wrong between us and the API server into an AccessError that says what happened, in
 * the user's terms, with a hint and the right exit code: socket and DNS failures, TLS verification, proxy refusals,
 * timeouts, and the API server's own `Status` answers (401, 403 with the RBAC rule that is missing, 404 as a typed
 * error the caller maps to "no such pod/secret/namespace"). REST requests and WebSocket upgrades share this mapping.
 * No message ever contains a credential or a response body other than a Status message.
 */
import type { V1Status } from '@kubernetes/client-node'
import { AccessError, ExitCode } from '../errors.js'
import { formatDuration } from './duration.js'
import { displayPath } from './kubeconfig.js'
import { ProxyError, type ProxySetting } from './proxy.js'
import { type AuthKind, authKind, type ClusterConfig, type UserConfig } from './types.js'

/** What a failed request was about, for the messages. */
export interface RequestContext {
  readonly method: string
  /** The API path, without the query. */
  readonly path: string
  /** `host:port` of the API server. */
  readonly server: string
  readonly proxy: ProxySetting | undefined
  readonly cluster: ClusterConfig
  readonly user: UserConfig
  readonly contextName: string | undefined
  readonly requestTimeoutMs: number
  readonly homeDir?: string | undefined
}

/** The API server answered with an error status. `status` is its Status object when it sent one. */
export class KubeApiError extends AccessError {
  override readonly name: string = 'KubeApiError'
  constructor(
    message: string,
    readonly httpStatus: number,
    /** Status.reason, e.g. `Forbidden`, `NotFound`, `BadRequest`. */
    readonly reason: string | undefined,
    readonly status: V1Status | undefined,
    options: { hint?: string; exitCode: number },
  ) {
    super(message, options)
  }
}

/**
 * 404. Its meaning depends on what was asked (no such pod, secret or namespace), so callers catch it and map it to
 * their own AccessError; `kind` and `resourceName` come from the Status details when the server sent them.
 */
export class KubeNotFoundError extends KubeApiError {
  override readonly name = 'KubeNotFoundError'
  readonly kind: string | undefined
  readonly resourceName: string | undefined
  constructor(message: string, status: V1Status | undefined) {
    super(message, 404, status?.reason ?? 'NotFound', status, { exitCode: ExitCode.internal })
    this.kind = status?.details?.kind
    this.resourceName = status?.details?.name
  }
}

export function isNotFound(error: unknown): error is KubeNotFoundError {
  return error instanceof KubeNotFoundError
}

/** Our own deadline (--request-timeout) expired. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError'
  readonly code = 'ETIMEDOUT'
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${formatDuration(timeoutMs)}`)
  }
}

/** The parts of an RBAC denial, parsed from the API server's message. */
export interface ForbiddenDetails {
  readonly user: string
  readonly verb: string
  /** `secrets`, or `pods/exec` for a subresource. */
  readonly resource: string
  readonly group: string
  /** undefined at the cluster scope. */
  readonly namespace: string | undefined
  /** For a non-resource URL (`/version`). */
  readonly path: string | undefined
}

const GO_STRING = '"((?:[^"\\\\]|\\\\.)*)"'
const FORBIDDEN_RESOURCE = new RegExp(
  `User ${GO_STRING} cannot (\\S+) resource ${GO_STRING} in API group ${GO_STRING} (?:in the namespace ${GO_STRING}|at the cluster scope)`,
)
const FORBIDDEN_PATH = new RegExp(`User ${GO_STRING} cannot (\\S+) path ${GO_STRING}`)

/**
 * Parses the apiserver's `forbiddenMessage`: `User "alice" cannot get resource "secrets" in API group "" in the
 * namespace "akamas"` (also at the cluster scope, and for non-resource paths).
 */
export function parseForbiddenMessage(message: string): ForbiddenDetails | undefined {
  const resource = FORBIDDEN_RESOURCE.exec(message)
  if (resource) {
    return {
      user: unquote(resource[1]!),
      verb: resource[2]!,
      resource: unquote(resource[3]!),
      group: unquote(resource[4]!),
      namespace: resource[5] === undefined ? undefined : unquote(resource[5]),
      path: undefined,
    }
  }
  const path = FORBIDDEN_PATH.exec(message)
  if (path) {
    return {
      user: unquote(path[1]!),
      verb: path[2]!,
      resource: '',
      group: '',
      namespace: undefined,
      path: unquote(path[3]!),
    }
  }
  return undefined
}

/** "you may not get secrets in namespace akamas" and a hint naming the permission to ask for. */
export function describeForbidden(details: ForbiddenDetails): { message: string; hint: string } {
  if (details.path !== undefined) {
    return {
      message: `you may not ${details.verb} path ${details.path}`,
      hint: `ask your cluster administrator to allow ${quoteUser(details.user)} to ${details.verb} the non-resource URL ${details.path}`,
    }
  }
  const [base, subresource] = details.resource.split('/', 2) as [string, string | undefined]
  const qualified = details.group ? `${base}.${details.group}` : base
  const shown = subresource ? `${qualified}/${subresource}` : qualified
  const scope = details.namespace === undefined ? 'at the cluster scope' : `in namespace ${details.namespace}`
  const canI = [
    'kubectl auth can-i',
    details.verb,
    qualified,
    ...(subresource ? [`--subresource=${subresource}`] : []),
    ...(details.namespace === undefined ? [] : ['-n', details.namespace]),
  ].join(' ')
  return {
    message: `you may not ${details.verb} ${shown} ${scope}`,
    hint:
      `ask your cluster administrator for an RBAC ${details.namespace === undefined ? 'ClusterRole' : 'Role'} that ` +
      `allows "${details.verb}" on "${shown}" ${scope} for ${quoteUser(details.user)} (check with \`${canI}\`)`,
  }
}

/** Maps a non-2xx answer. The body is only read as a Status; anything else is summarised, never quoted whole. */
export function errorFromResponse(
  statusCode: number,
  statusText: string | undefined,
  contentType: string | undefined,
  body: Buffer,
  context: RequestContext,
): KubeApiError {
  const status = parseStatus(body, contentType)
  const serverMessage = status?.message?.trim() || undefined
  const via = route(context)
  const plainText =
    !status && /^text\/plain/i.test(contentType ?? '') && body.length > 0
      ? body.toString('utf8', 0, 300).replace(/\s+/g, ' ').trim().slice(0, 200)
      : undefined
  const fallback = `${statusCode} ${statusText ?? ''}`.trim()
  const summary = serverMessage ?? plainText ?? fallback

  if (statusCode === 401) {
    return new KubeApiError(unauthorizedMessage(context), 401, status?.reason ?? 'Unauthorized', status, {
      exitCode: ExitCode.unauthorized,
      hint: unauthorizedHint(context),
    })
  }
  if (statusCode === 403) {
    const details = serverMessage ? parseForbiddenMessage(serverMessage) : undefined
    if (details) {
      const { message, hint } = describeForbidden(details)
      return new KubeApiError(message, 403, status?.reason ?? 'Forbidden', status, {
        exitCode: ExitCode.forbidden,
        hint,
      })
    }
    return new KubeApiError(`the API server refused the request: ${summary}`, 403, status?.reason, status, {
      exitCode: ExitCode.forbidden,
      hint: serverMessage
        ? 'ask your cluster administrator for the permission it names'
        : `a proxy or gateway may have refused it${via.proxy ? ` (${via.text})` : ''}; check with your cluster administrator`,
    })
  }
  if (statusCode === 404) {
    return new KubeNotFoundError(
      serverMessage ?? `the API server has no ${context.path} (404)`,
      status ?? { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 },
    )
  }
  if (statusCode === 429 || statusCode === 502 || statusCode === 503 || statusCode === 504) {
    return new KubeApiError(
      `the API server at ${context.server} is not available: ${summary}${via.proxy ? ` (${via.text})` : ''}`,
      statusCode,
      status?.reason,
      status,
      {
        exitCode: ExitCode.unreachable,
        hint:
          statusCode === 429
            ? 'the API server is overloaded and asks clients to slow down; retry in a moment'
            : 'the cluster or a gateway in front of it is having trouble; retry in a moment, and check the cluster',
      },
    )
  }
  if (statusCode >= 500) {
    return new KubeApiError(`the API server failed: ${summary}`, statusCode, status?.reason, status, {
      exitCode: ExitCode.internal,
      hint: 'this is an error inside the cluster; retry, and if it persists check the API server',
    })
  }
  return new KubeApiError(
    serverMessage ?? `unexpected answer from the API server to ${context.method} ${context.path}: ${fallback}`,
    statusCode,
    status?.reason,
    status,
    { exitCode: ExitCode.internal },
  )
}

const TLS_UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REJECTED',
  'INVALID_CA',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
])
const TLS_CLIENT_CERT_REJECTED = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
])

const NETWORK: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'DNS lookup failed (temporary failure)',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was closed',
  ECONNABORTED: 'the connection was aborted',
}

/**
 * Maps a failure below HTTP (socket, DNS, TLS, proxy, our timeout). AbortErrors and AccessErrors pass through.
 */
export function errorFromTransport(thrown: unknown, context: RequestContext): Error {
  if (thrown instanceof AccessError) return thrown
  const error = thrown instanceof Error ? thrown : new Error(String(thrown))
  if (error.name === 'AbortError') return error
  const via = route(context)
  const target = `the API server at ${context.server}`

  if (error instanceof RequestTimeoutError) {
    return new AccessError(`${target} did not answer within ${formatDuration(error.timeoutMs)} (${via.text})`, {
      exitCode: ExitCode.unreachable,
      hint: `${networkHint(context)}; if the server is just slow, raise --request-timeout`,
      cause: error,
    })
  }
  if (error instanceof ProxyError) {
    const proxy = `the proxy ${error.proxy.display} (from ${error.proxy.from})`
    if (error.statusCode === 407) {
      return new AccessError(`${proxy} requires authentication (407)`, {
        exitCode: ExitCode.unreachable,
        hint: 'put the credentials in the proxy URL (http://user:password@host:port)',
        cause: error,
      })
    }
    if (error.statusCode !== undefined) {
      return new AccessError(`${proxy} could not open a tunnel to ${context.server} (${error.statusText})`, {
        exitCode: ExitCode.unreachable,
        hint: `check that the proxy may reach the API server; to bypass it for this host, add it to NO_PROXY`,
        cause: error,
      })
    }
    const reason = (error.code && NETWORK[error.code]) ?? error.message
    return new AccessError(`cannot reach ${proxy}: ${reason}`, {
      exitCode: ExitCode.unreachable,
      hint: `check ${error.proxy.from}${error.proxy.from.startsWith('proxy-url') ? '' : ' (and NO_PROXY)'}`,
      cause: error,
    })
  }

  const code = errorCode(error)
  if (code && TLS_UNTRUSTED.has(code)) {
    return new AccessError(
      `${target} presented a certificate that is not trusted (${code}${via.proxy ? `, ${via.text}` : ''})`,
      {
        exitCode: ExitCode.tls,
        hint: untrustedHint(context),
        cause: error,
      },
    )
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new AccessError(
      `${target} presented a certificate that is not valid for ${context.cluster.tlsServerName ?? hostOf(context.server)}`,
      {
        exitCode: ExitCode.tls,
        hint: `use the address the certificate was issued for in the cluster's server, or set tls-server-name for cluster "${context.cluster.name}"`,
        cause: error,
      },
    )
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new AccessError(
      `${target} presented a certificate that ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}`,
      {
        exitCode: ExitCode.tls,
        hint: "check your computer's clock; otherwise the cluster's certificate must be renewed by its administrator",
        cause: error,
      },
    )
  }
  if (code && TLS_CLIENT_CERT_REJECTED.has(code)) {
    const sentNone = code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'
    const what = sentNone
      ? `${target} requires a client certificate during the TLS handshake, and we have none (${code})`
      : `${target} rejected our client certificate during the TLS handshake (${code})`
    return new AccessError(what, {
      exitCode: ExitCode.unauthorized,
      hint: `the client certificate of user "${context.user.name}" may have expired or been issued by another CA; get a fresh kubeconfig`,
      cause: error,
    })
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'EPROTO') {
    return new AccessError(`${target} does not speak TLS (${code})`, {
      exitCode: ExitCode.tls,
      hint: "check the port in the cluster's server URL; something else (a plain HTTP service?) answers there",
      cause: error,
    })
  }
  if (code?.startsWith('ERR_SSL_') || code?.startsWith('ERR_TLS_') || code?.startsWith('ERR_OSSL_')) {
    return new AccessError(`TLS with ${target} failed (${code})`, {
      exitCode: ExitCode.tls,
      hint: untrustedHint(context),
      cause: error,
    })
  }
  if (code && NETWORK[code]) {
    const what =
      code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? `cannot resolve ${hostOf(context.server)}, the host of the API server (${via.text})`
        : code === 'ECONNRESET' || code === 'EPIPE'
          ? `the connection to ${target} was closed unexpectedly (${via.text})`
          : `cannot connect to ${target} (${via.text}): ${NETWORK[code]}`
    return new AccessError(what, { exitCode: ExitCode.unreachable, hint: networkHint(context), cause: error })
  }
  if (error.message === 'socket hang up') {
    return new AccessError(`the connection to ${target} was closed unexpectedly (${via.text})`, {
      exitCode: ExitCode.unreachable,
      hint: networkHint(context),
      cause: error,
    })
  }
  return new AccessError(`cannot talk to ${target} (${via.text}): ${error.message}`, {
    exitCode: ExitCode.unreachable,
    hint: networkHint(context),
    cause: error,
  })
}

// ---------------------------------------------------------------------------------------------------------------

function parseStatus(body: Buffer, contentType: string | undefined): V1Status | undefined {
  if (body.length === 0 || body.length > 1024 * 1024) return undefined
  if (contentType && !/json/i.test(contentType) && body[0] !== 0x7b) return undefined
  try {
    const doc = JSON.parse(body.toString('utf8')) as unknown
    if (typeof doc === 'object' && doc !== null && (doc as { kind?: unknown }).kind === 'Status') {
      return doc as V1Status
    }
  } catch {
    // not JSON: summarised by the caller
  }
  return undefined
}

function unauthorizedMessage(context: RequestContext): string {
  const { user } = context
  if (user.name === 'in-cluster') return "the API server rejected the pod's service account token (401 Unauthorized)"
  if (authKind(user) === 'none') {
    return `the API server requires credentials, but ${user.name ? `user "${user.name}"` : `context "${context.contextName}"`} has none (401 Unauthorized)`
  }
  const inContext = context.contextName ? ` (context "${context.contextName}")` : ''
  return `the API server rejected the credentials of user "${user.name}"${inContext} (401 Unauthorized)`
}

function unauthorizedHint(context: RequestContext): string {
  const kind: AuthKind = authKind(context.user)
  switch (kind) {
    case 'exec':
      return `they come from the credential plugin "${basename(context.user.exec!.command)}": log in again with your cloud CLI (e.g. \`aws sso login\`, \`gcloud auth login\`, \`az login\`) and retry`
    case 'token':
      return context.user.name === 'in-cluster'
        ? 'the service account token may have expired or been revoked; restart the pod'
        : `the token${context.user.tokenSource ? ` (${context.user.tokenSource})` : ''} may have expired or been revoked: log in again with your cloud CLI or get a fresh kubeconfig`
    case 'client-certificate':
      return 'the client certificate may have expired or been revoked: get a fresh kubeconfig from your cluster administrator'
    case 'basic':
      return 'check the username and password in the kubeconfig (many clusters no longer accept basic auth)'
    default:
      return 'get a kubeconfig with credentials for this cluster (e.g. from your cloud CLI)'
  }
}

function untrustedHint(context: RequestContext): string {
  const { cluster } = context
  const via = context.proxy ? '; a TLS-inspecting proxy in between would also cause this' : ''
  if (cluster.certificateAuthorityData !== undefined) {
    const source = cluster.certificateAuthorityFile
      ? `certificate-authority (${displayPath(cluster.certificateAuthorityFile, context.homeDir)})`
      : 'certificate-authority-data'
    return `the ${source} of cluster "${cluster.name}" does not match the server: get a fresh kubeconfig for this cluster${via}`
  }
  return `cluster "${cluster.name}" has no certificate-authority-data, so only public CAs are trusted: add the cluster's CA to the kubeconfig (or, for a throwaway test cluster only, insecure-skip-tls-verify: true)${via}`
}

function networkHint(context: RequestContext): string {
  if (context.proxy) {
    return `check the proxy setting (${context.proxy.from}) and that the proxy can reach the cluster; hosts listed in NO_PROXY bypass it`
  }
  const where = context.cluster.definedIn
    ? ` (server of cluster "${context.cluster.name}" in ${displayPath(context.cluster.definedIn, context.homeDir)})`
    : ''
  return `check that the cluster is running and that you are on the right network or VPN${where}; if you need a proxy, set HTTPS_PROXY`
}

function route(context: RequestContext): { proxy: boolean; text: string } {
  return context.proxy
    ? { proxy: true, text: `through the proxy ${context.proxy.display} from ${context.proxy.from}` }
    : { proxy: false, text: 'no proxy' }
}

function errorCode(error: Error): string | undefined {
  const code = (error as NodeJS.ErrnoException).code
  return typeof code === 'string' ? code : undefined
}

function hostOf(server: string): string {
  const index = server.lastIndexOf(':')
  const host = index > 0 ? server.slice(0, index) : server
  return host.startsWith('[') ? host.slice(1, -1) : host
}

function basename(command: string): string {
  return command.split(/[/\\]/).pop() ?? command
}

function quoteUser(user: string): string {
  return user.startsWith('system:serviceaccount:')
    ? `the service account ${user.split(':').slice(2).join('/')}`
    : `User "${user}"`
}

function unquote(goQuoted: string): string {
  return goQuoted.replace(/\\(.)/g, '$1')
}
