/**
 * Opens WebSocket connections to the API server (exec, attach, port-forward) with exactly the TLS, credentials and
 * proxy of the REST client, over the same keep-alive agent, so a WebSocket after a REST call usually rides the
 * connection that is already open. Unlike @kubernetes/client-node, which rejects with a bare "Unexpected server
 * response: 403", a refused upgrade is read as a Kubernetes Status and mapped like any REST error ("you may not
 * create pods/exec in namespace akamas", "container nope is not valid for pod x"). `ws` (about 20 ms to load) is
 * imported only here: when a stream is opened, or just before (preloadWebSocket), while the requests that find the
 * pod are on the network.
 */
import type { ClientRequest, IncomingMessage } from 'node:http'
import type { WebSocket } from 'ws'
import { AccessError, ExitCode } from '../errors.js'
import { errorFromResponse, errorFromTransport, KubeApiError, RequestTimeoutError } from './api-errors.js'
import type { KubeClient, KubeTransport } from './client.js'
import type { QueryParams } from './types.js'

/**
 * Starts importing ws (~20 ms of CPU) now, while the requests that find the pod are on the network. Node's module
 * cache makes the later `import('ws')` the same load; a failure surfaces there.
 */
export function preloadWebSocket(): void {
  import('ws').catch(() => {})
}

export interface OpenedWebSocket {
  /** Open; the caller owns it from now on (listen to `error` and `close`). */
  readonly ws: WebSocket
  /** The subprotocol the server chose, e.g. `v5.channel.k8s.io`. */
  readonly protocol: string
}

export interface OpenWebSocketOptions {
  readonly signal?: AbortSignal
  readonly headers?: Readonly<Record<string, string>>
  /** Fills the 4-byte masking key of each frame we send (ws's default: random bytes). */
  readonly generateMask?: (mask: Buffer) => void
}

type Attempt =
  | { readonly kind: 'open'; readonly ws: WebSocket; readonly protocol: string }
  | { readonly kind: 'failed'; readonly error: Error; readonly httpStatus: number | undefined }

/**
 * Upgrades `GET path?query` to a WebSocket offering `protocols` (in order of preference). Resolves once open; rejects
 * with an AccessError mapped like REST errors. The handshake must finish within the client's request timeout.
 */
export async function openWebSocket(
  client: KubeClient,
  path: string,
  query: QueryParams | undefined,
  protocols: readonly string[],
  options: OpenWebSocketOptions = {},
): Promise<OpenedWebSocket> {
  const { WebSocket: WebSocketClass } = await import('ws')
  let refreshed = false
  for (;;) {
    const transport = await client.transport()
    const attempt = await connect(WebSocketClass, client, transport, path, query, protocols, options)
    if (attempt.kind === 'open') return { ws: attempt.ws, protocol: attempt.protocol }
    if (attempt.httpStatus === 401 && transport.refreshable && !refreshed) {
      refreshed = true
      client.logger.debug(`WebSocket ${path}: 401 with exec credentials, running the credential plugin again`)
      client.refreshCredentials(transport)
      continue
    }
    throw attempt.error
  }
}

function connect(
  WebSocketClass: typeof WebSocket,
  client: KubeClient,
  transport: KubeTransport,
  path: string,
  query: QueryParams | undefined,
  protocols: readonly string[],
  options: OpenWebSocketOptions,
): Promise<Attempt> {
  const context = client.requestContext('GET', path)
  const url = client.url(path, query)
  const started = performance.now()
  return new Promise<Attempt>((resolve) => {
    let settled = false
    const ws = new WebSocketClass(url, [...protocols], {
      agent: transport.agent,
      headers: { ...transport.headers, ...options.headers } as Record<string, string>,
      perMessageDeflate: false,
      followRedirects: false,
      ...(options.generateMask ? { generateMask: options.generateMask } : {}),
    })
    const timeoutMs = client.requestTimeoutMs
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            fail(errorFromTransport(new RequestTimeoutError(timeoutMs), context), undefined)
            ws.terminate()
          }, timeoutMs)
        : undefined
    const onAbort = () => {
      const reason = options.signal?.reason
      fail(reason instanceof Error ? reason : Object.assign(new Error('aborted'), { name: 'AbortError' }), undefined)
      ws.terminate()
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })

    function done(attempt: Attempt): void {
      if (settled) return
      settled = true
      if (timer) clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      resolve(attempt)
    }
    function fail(error: Error, httpStatus: number | undefined): void {
      done({ kind: 'failed', error, httpStatus })
    }

    // Stays attached after a failure: ws reports the aborted handshake as an error too.
    const onError = (error: Error) => fail(mapWebSocketError(error, context, protocols), undefined)
    ws.on('error', onError)
    ws.on('unexpected-response', (req: ClientRequest, res: IncomingMessage) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.length
        if (size <= 1024 * 1024) chunks.push(chunk)
      })
      const finish = () => {
        const status = res.statusCode ?? 0
        client.logger.debug(
          `WebSocket GET ${url.pathname} → ${status} in ${(performance.now() - started).toFixed(0)} ms`,
        )
        fail(
          refusedUpgrade(
            errorFromResponse(status, res.statusMessage, res.headers['content-type'], Buffer.concat(chunks), context),
            path,
          ),
          status,
        )
        req.destroy()
      }
      res.on('end', finish)
      res.on('error', finish)
    })
    ws.once('open', () => {
      client.logger.debug(
        `WebSocket GET ${url.pathname} → 101 ${ws.protocol || '(no protocol)'} in ${(performance.now() - started).toFixed(0)} ms`,
      )
      if (settled) return
      ws.off('error', onError)
      done({ kind: 'open', ws, protocol: ws.protocol })
    })
  })
}

/**
 * An upgrade answered with a plain 4xx (401, 403, 404 and 429 say what is wrong on their own): the API server, or a
 * proxy in front of it, would not switch protocols, or the kubelet refused the stream. Left as is it would read as
 * "unexpected error" (exit 1, no hint); it is not a bug, and the user can act on it. The status is kept, so callers
 * that retry a refused stream (forward, proxy) still see a 400.
 */
function refusedUpgrade(error: Error, path: string): Error {
  if (!(error instanceof KubeApiError) || error.exitCode !== ExitCode.internal) return error
  // 404 stays a KubeNotFoundError: callers turn it into "the pod is gone".
  if (error.httpStatus < 400 || error.httpStatus >= 500 || error.httpStatus === 404) return error
  const kind = path.endsWith('/portforward') ? 'port-forward' : path.endsWith('/exec') ? 'exec' : 'streaming'
  const pod = /\/pods\/([^/]+)\//.exec(path)?.[1]
  const target = pod === undefined ? '' : ` to pod ${decodeURIComponent(pod)}`
  // The kubelet's answer to a container the pod does not have: the user's --container.
  const badContainer = /^container \S+ is not valid for pod /.test(error.message)
  return new KubeApiError(
    `the API server refused to open the ${kind} connection${target} (${error.httpStatus}): ${error.message}`,
    error.httpStatus,
    error.reason,
    error.status,
    badContainer
      ? { exitCode: ExitCode.usage, hint: 'pass one of the pod’s containers with --container (or leave it out)' }
      : {
          exitCode: ExitCode.unreachable,
          hint: 'a proxy or load balancer in front of the API server may not pass WebSocket upgrades, or the pod stopped meanwhile; akm-access doctor checks both',
        },
  )
}

function mapWebSocketError(
  error: Error,
  context: ReturnType<KubeClient['requestContext']>,
  protocols: readonly string[],
): Error {
  // ws's own handshake checks: the server answered 101 but not as we asked.
  if (/subprotocol/i.test(error.message)) {
    return new AccessError(
      `the API server did not accept any of the stream protocols offered for ${context.path} (${protocols.join(', ')})`,
      {
        exitCode: ExitCode.internal,
        hint: 'the cluster may be too old or too new for akm-access; check the Kubernetes version',
        cause: error,
      },
    )
  }
  if (/Sec-WebSocket|Upgrade header|Invalid WebSocket frame|Opening handshake/i.test(error.message)) {
    return new AccessError(`the WebSocket upgrade to ${context.path} failed: ${error.message}`, {
      exitCode: ExitCode.unreachable,
      hint: 'a proxy or load balancer in front of the API server may not support WebSockets',
      cause: error,
    })
  }
  return errorFromTransport(error, context)
}
