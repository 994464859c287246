/**
 * Proxy support with kubectl's semantics, which @kubernetes/client-node lacks (it ignores HTTPS_PROXY and NO_PROXY):
 * the kubeconfig's `proxy-url` wins; otherwise HTTPS_PROXY/HTTP_PROXY (upper case first, then lower case) unless
 * NO_PROXY matches, following Go's `httpproxy.FromEnvironment`, including its rule that localhost and loopback
 * addresses never go through a proxy. Both REST and WebSocket traffic use an HTTP CONNECT tunnel opened here.
 */
import net from 'node:net'
import tls from 'node:tls'
import { AccessError, ExitCode } from '../errors.js'
import { registerSecret } from '../redact.js'
import type { Env } from './types.js'

export interface ProxySetting {
  /** `http://proxy.corp:3128`, without credentials: safe to print. */
  readonly display: string
  readonly protocol: 'http:' | 'https:'
  /** Host name or IP (no brackets). */
  readonly host: string
  readonly port: number
  /** `Basic …` when the proxy URL has credentials. */
  readonly authorization: string | undefined
  /** `proxy-url in the kubeconfig`, `HTTPS_PROXY`, `https_proxy`, `HTTP_PROXY`… */
  readonly from: string
}

/**
 * The proxy to reach `server` through, or undefined for a direct connection. Throws AccessError (exit `config`) for a
 * proxy URL we cannot use (SOCKS, a bad URL).
 */
export function selectProxy(server: URL, env: Env, kubeconfigProxyUrl: string | undefined): ProxySetting | undefined {
  if (kubeconfigProxyUrl) return parseProxyUrl(kubeconfigProxyUrl, 'proxy-url in the kubeconfig')
  const https = server.protocol === 'https:' || server.protocol === 'wss:'
  const names = https ? ['HTTPS_PROXY', 'https_proxy'] : ['HTTP_PROXY', 'http_proxy']
  const name = names.find((candidate) => env[candidate])
  if (!name) return undefined
  const host = unbracket(server.hostname)
  const port = server.port || (https ? '443' : '80')
  if (!useProxy(host, port, env.NO_PROXY || env.no_proxy || '')) return undefined
  return parseProxyUrl(env[name]!, name)
}

/** Go's `useProxy`: false when the host is localhost, a loopback IP, or matched by NO_PROXY. */
export function useProxy(host: string, port: string, noProxy: string): boolean {
  const lower = host.toLowerCase().trim()
  if (lower === 'localhost') return false
  const ipVersion = net.isIP(lower)
  if (ipVersion && isLoopback(lower, ipVersion)) return false
  for (const rawEntry of noProxy.split(',')) {
    const entry = rawEntry.trim().toLowerCase()
    if (!entry) continue
    if (entry === '*') return false
    const cidr = parseCidr(entry)
    if (cidr) {
      if (ipVersion && cidr.check(lower, ipVersion === 6 ? 'ipv6' : 'ipv4')) return false
      continue
    }
    let entryHost = entry
    let entryPort = ''
    const hostPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(entry)
    if (hostPort) {
      entryHost = unbracket(hostPort[1]!)
      entryPort = hostPort[2]!
    } else if (entry.startsWith('[') && entry.endsWith(']')) {
      entryHost = unbracket(entry)
    }
    if (!entryHost) continue
    if (net.isIP(entryHost)) {
      if (ipVersion && sameIp(entryHost, lower) && (entryPort === '' || entryPort === port)) return false
      continue
    }
    // "foo.com" matches foo.com and any subdomain; ".foo.com" and "*.foo.com" only subdomains.
    let suffix = entryHost.startsWith('*.') ? entryHost.slice(1) : entryHost
    let matchHost = false
    if (!suffix.startsWith('.')) {
      matchHost = true
      suffix = `.${suffix}`
    }
    if (lower.endsWith(suffix) || (matchHost && lower === suffix.slice(1))) {
      if (entryPort === '' || entryPort === port) return false
    }
  }
  return true
}

function parseProxyUrl(raw: string, from: string): ProxySetting {
  let url: URL | undefined
  try {
    // Go: a value without a scheme ("proxy:3128") is http://.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`)
  } catch {
    url = undefined
  }
  if (!url?.hostname) {
    throw new AccessError(`the proxy URL in ${from} is not valid`, {
      exitCode: ExitCode.config,
      hint: 'use the form http://host:port (credentials as http://user:password@host:port)',
    })
  }
  const display = `${url.protocol}//${url.host}`
  if (url.protocol === 'socks5:' || url.protocol === 'socks5h:' || url.protocol === 'socks:') {
    throw new AccessError(`SOCKS proxies are not supported yet (${display} from ${from})`, {
      exitCode: ExitCode.config,
      hint: 'use an HTTP proxy that supports CONNECT, or run akm-access from a network that reaches the API server',
    })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new AccessError(`unsupported proxy scheme ${url.protocol} (${display} from ${from})`, {
      exitCode: ExitCode.config,
      hint: 'use an http:// or https:// proxy URL',
    })
  }
  let authorization: string | undefined
  if (url.username || url.password) {
    const user = decodeURIComponent(url.username)
    const password = decodeURIComponent(url.password)
    registerSecret(password)
    authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
    registerSecret(authorization.slice(6))
  }
  return {
    display,
    protocol: url.protocol,
    host: unbracket(url.hostname),
    port: url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80,
    authorization,
    from,
  }
}

/** Something went wrong between us and the proxy, rather than beyond it. */
export class ProxyError extends Error {
  override readonly name = 'ProxyError'
  /** `502 Bad Gateway` when the proxy refused the CONNECT. */
  readonly statusText: string | undefined
  constructor(
    message: string,
    readonly proxy: ProxySetting,
    /** The proxy's HTTP status when it refused the CONNECT; undefined when we could not talk to it at all. */
    readonly statusCode: number | undefined,
    /** The socket error code (ECONNREFUSED, ENOTFOUND, ETIMEDOUT…) when we could not talk to it. */
    readonly code: string | undefined,
    options?: { cause?: unknown; statusText?: string },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.statusText = options?.statusText
  }
}

/**
 * Opens a TCP tunnel to `host:port` through the proxy with HTTP CONNECT. Resolves with the socket, ready for TLS.
 * `timeoutMs` (0 = none) covers reaching the proxy and its answer.
 */
export function connectThroughProxy(
  proxy: ProxySetting,
  host: string,
  port: number,
  options: { timeoutMs: number; keepAlive?: boolean },
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket: net.Socket =
      proxy.protocol === 'https:'
        ? tls.connect({
            host: proxy.host,
            port: proxy.port,
            servername: net.isIP(proxy.host) ? undefined : proxy.host,
            ALPNProtocols: ['http/1.1'],
          })
        : net.connect({ host: proxy.host, port: proxy.port })
    if (options.keepAlive) socket.setKeepAlive(true, 1000)
    let settled = false
    let received = Buffer.alloc(0)
    const timer =
      options.timeoutMs > 0
        ? setTimeout(() => {
            fail(new ProxyError(`timed out talking to the proxy ${proxy.display}`, proxy, undefined, 'ETIMEDOUT'))
          }, options.timeoutMs)
        : undefined

    const cleanup = () => {
      if (timer) clearTimeout(timer)
      socket.off('data', onData)
      socket.off('error', onError)
      socket.off('close', onClose)
      socket.off(proxy.protocol === 'https:' ? 'secureConnect' : 'connect', onConnect)
    }
    const fail = (error: Error) => {
      if (settled) return
      settled = true
      cleanup()
      socket.destroy()
      reject(error)
    }
    const onError = (error: NodeJS.ErrnoException) => {
      fail(
        new ProxyError(`cannot reach the proxy ${proxy.display}: ${error.message}`, proxy, undefined, error.code, {
          cause: error,
        }),
      )
    }
    const onClose = () => {
      fail(new ProxyError(`the proxy ${proxy.display} closed the connection`, proxy, undefined, 'ECONNRESET'))
    }
    const onConnect = () => {
      const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`
      let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`
      if (proxy.authorization) head += `Proxy-Authorization: ${proxy.authorization}\r\n`
      socket.write(`${head}\r\n`)
    }
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) {
        if (received.length > 64 * 1024)
          fail(new ProxyError(`bad answer from the proxy ${proxy.display}`, proxy, 0, undefined))
        return
      }
      const statusLine = received.subarray(0, received.indexOf('\r\n')).toString('latin1')
      const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine)
      const status = match ? Number(match[1]) : 0
      if (status < 200 || status > 299) {
        const text = match ? `${status} ${match[2] ?? ''}`.trim() : 'not an HTTP answer'
        fail(
          new ProxyError(
            `the proxy ${proxy.display} refused to connect to ${host}:${port} (${text})`,
            proxy,
            status,
            undefined,
            {
              statusText: text,
            },
          ),
        )
        return
      }
      settled = true
      cleanup()
      const rest = received.subarray(end + 4)
      if (rest.length > 0) socket.unshift(rest)
      resolve(socket)
    }
    socket.on('data', onData)
    socket.on('error', onError)
    socket.on('close', onClose)
    socket.once(proxy.protocol === 'https:' ? 'secureConnect' : 'connect', onConnect)
  })
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

function isLoopback(ip: string, version: number): boolean {
  if (version === 4) return ip.startsWith('127.')
  const list = new net.BlockList()
  list.addAddress('::1', 'ipv6')
  list.addSubnet('::ffff:127.0.0.0', 104, 'ipv6')
  return list.check(ip, 'ipv6')
}

function sameIp(a: string, b: string): boolean {
  const versionA = net.isIP(a)
  if (versionA !== net.isIP(b)) return false
  const list = new net.BlockList()
  list.addAddress(a, versionA === 6 ? 'ipv6' : 'ipv4')
  return list.check(b, versionA === 6 ? 'ipv6' : 'ipv4')
}

function parseCidr(entry: string): net.BlockList | undefined {
  const match = /^([^/]+)\/(\d{1,3})$/.exec(entry)
  if (!match) return undefined
  const version = net.isIP(match[1]!)
  const prefix = Number(match[2])
  if (!version || prefix > (version === 6 ? 128 : 32)) return undefined
  const list = new net.BlockList()
  list.addSubnet(match[1]!, prefix, version === 6 ? 'ipv6' : 'ipv4')
  return list
}
