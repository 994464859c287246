/**
 * Which Docker engine to talk to, resolved as the docker CLI does (cli/command/cli.go, cli/context/store): the
 * `--docker-context` flag (the CLI's --context), else DOCKER_HOST (the `default` context with that host), else
 * DOCKER_CONTEXT, else `currentContext` in $DOCKER_CONFIG/config.json (default ~/.docker); a named context's
 * endpoint is `Endpoints.docker.Host` in `contexts/meta/<sha256(name)>/meta.json`, its TLS material is in
 * `contexts/tls/<sha256(name)>/docker/`. The `default` context is DOCKER_HOST or unix:///var/run/docker.sock, with
 * DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for TLS. Plain data and file reads: no network here.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { AccessError, ExitCode } from '../errors.js'

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock'

export interface DockerTls {
  ca?: Buffer | undefined
  cert?: Buffer | undefined
  key?: Buffer | undefined
  /** Verify the engine's certificate (DOCKER_TLS_VERIFY, or a context without SkipTLSVerify). */
  verify: boolean
}

export type DockerTransport =
  | { kind: 'unix'; socketPath: string }
  | { kind: 'tcp'; hostname: string; port: number; tls: DockerTls | undefined }
  /** `ssh://[user@]host[:port]`: `docker system dial-stdio` run by OpenSSH on that host, as the docker CLI does. */
  | { kind: 'ssh'; user: string | undefined; hostname: string; port: number | undefined }

export interface DockerEndpoint {
  /** The host as configured: `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2376`, `ssh://me@host`. */
  host: string
  /** The context it belongs to (`default` for DOCKER_HOST and the local socket). */
  context: string
  /** Where the choice came from, for messages: `DOCKER_HOST`, `context prod (DOCKER_CONTEXT)`… */
  from: string
  transport: DockerTransport
}

export interface DockerEnvironment {
  env: NodeJS.ProcessEnv
  homeDir: string | undefined
  /** For tests. */
  readFile?: (file: string) => Buffer
}

/** The docker CLI's config folder: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(environment: DockerEnvironment): string | undefined {
  if (environment.env.DOCKER_CONFIG) return environment.env.DOCKER_CONFIG
  return environment.homeDir ? path.join(environment.homeDir, '.docker') : undefined
}

export function resolveDockerEndpoint(contextFlag: string | undefined, environment: DockerEnvironment): DockerEndpoint {
  const { env } = environment
  const read = environment.readFile ?? ((file: string) => readFileSync(file))
  const configDir = dockerConfigDir(environment)
  let name: string
  let from: string
  if (contextFlag) {
    name = contextFlag
    from = `context ${name} (--docker-context)`
  } else if (env.DOCKER_HOST) {
    return defaultEndpoint(env.DOCKER_HOST, 'DOCKER_HOST', environment, configDir)
  } else if (env.DOCKER_CONTEXT) {
    name = env.DOCKER_CONTEXT
    from = `context ${name} (DOCKER_CONTEXT)`
  } else {
    const current = configDir ? currentContext(path.join(configDir, 'config.json'), read) : undefined
    if (!current) return defaultEndpoint(DEFAULT_DOCKER_HOST, 'the default socket', environment, configDir)
    name = current
    from = `context ${name} (currentContext in ${path.join(configDir!, 'config.json')})`
  }
  if (name === 'default') {
    return defaultEndpoint(env.DOCKER_HOST || DEFAULT_DOCKER_HOST, from, environment, configDir)
  }
  return contextEndpoint(name, from, configDir, read)
}

/** The `default` context: a host given as is, TLS from the environment (moby client.FromEnv). */
function defaultEndpoint(
  host: string,
  from: string,
  environment: DockerEnvironment,
  configDir: string | undefined,
): DockerEndpoint {
  const { env } = environment
  const read = environment.readFile ?? ((file: string) => readFileSync(file))
  const verify = Boolean(env.DOCKER_TLS_VERIFY)
  // A cert path alone means TLS without verification, as the Go client does; DOCKER_TLS_VERIFY means both.
  const useTls = verify || Boolean(env.DOCKER_CERT_PATH)
  let tls: DockerTls | undefined
  if (useTls) {
    const certDir = env.DOCKER_CERT_PATH || configDir
    const file = (name: string) => (certDir ? readOptional(path.join(certDir, name), read) : undefined)
    tls = { ca: file('ca.pem'), cert: file('cert.pem'), key: file('key.pem'), verify }
  }
  return { host, context: 'default', from, transport: parseHost(host, from, tls) }
}

function contextEndpoint(
  name: string,
  from: string,
  configDir: string | undefined,
  read: (file: string) => Buffer,
): DockerEndpoint {
  const digest = createHash('sha256').update(name).digest('hex')
  const metaPath = configDir ? path.join(configDir, 'contexts', 'meta', digest, 'meta.json') : undefined
  const text = metaPath ? readOptional(metaPath, read) : undefined
  if (!text || !metaPath) {
    throw new AccessError(`Docker context "${name}" not found (${from})`, {
      exitCode: ExitCode.config,
      hint: 'list the contexts with: docker context ls',
    })
  }
  let meta: { Endpoints?: { docker?: { Host?: unknown; SkipTLSVerify?: unknown } } }
  try {
    meta = JSON.parse(text.toString('utf8')) as typeof meta
  } catch (error) {
    throw new AccessError(`the Docker context "${name}" is malformed: ${metaPath}: ${(error as Error).message}`, {
      exitCode: ExitCode.config,
      hint: `inspect it with: docker context inspect ${name}`,
    })
  }
  const endpoint = meta.Endpoints?.docker
  const host = typeof endpoint?.Host === 'string' && endpoint.Host ? endpoint.Host : undefined
  if (!host) {
    throw new AccessError(`the Docker context "${name}" has no Docker endpoint`, {
      exitCode: ExitCode.config,
      hint: `inspect it with: docker context inspect ${name}`,
    })
  }
  const tlsDir = path.join(configDir!, 'contexts', 'tls', digest, 'docker')
  const ca = readOptional(path.join(tlsDir, 'ca.pem'), read)
  const cert = readOptional(path.join(tlsDir, 'cert.pem'), read)
  const key = readOptional(path.join(tlsDir, 'key.pem'), read)
  const tls = ca || cert || key ? { ca, cert, key, verify: endpoint?.SkipTLSVerify !== true } : undefined
  return { host, context: name, from, transport: parseHost(host, from, tls) }
}

function currentContext(configPath: string, read: (file: string) => Buffer): string | undefined {
  const text = readOptional(configPath, read)
  if (!text) return undefined
  try {
    const config = JSON.parse(text.toString('utf8')) as { currentContext?: unknown }
    return typeof config.currentContext === 'string' && config.currentContext ? config.currentContext : undefined
  } catch (error) {
    throw new AccessError(`the docker CLI's configuration ${configPath} is malformed: ${(error as Error).message}`, {
      exitCode: ExitCode.config,
      hint: 'fix the file, or point DOCKER_CONFIG at another folder',
    })
  }
}

/** The host forms the docker CLI accepts (opts.ParseHost), without Windows' npipe. */
export function parseHost(host: string, from: string, tls: DockerTls | undefined): DockerTransport {
  const invalid = (why: string) =>
    new AccessError(`invalid Docker host "${host}" (${from}): ${why}`, {
      exitCode: ExitCode.config,
      hint: 'use unix:///path/to/docker.sock, tcp://HOST:PORT or ssh://USER@HOST',
    })
  if (host.startsWith('unix://')) {
    const socketPath = host.slice('unix://'.length)
    if (!socketPath) throw invalid('no socket path')
    return { kind: 'unix', socketPath }
  }
  if (host.startsWith('npipe://')) throw invalid('Windows named pipes are not supported')
  let url: URL
  try {
    // A bare HOST:PORT is tcp, as for the docker CLI.
    url = new URL(host.includes('://') ? host : `tcp://${host}`)
  } catch {
    throw invalid('not a URL')
  }
  const hostname = url.hostname.replace(/^\[|\]$/g, '')
  if (!hostname) throw invalid('no host name')
  if (url.protocol === 'tcp:' || url.protocol === 'http:' || url.protocol === 'https:') {
    const secure = tls !== undefined || url.protocol === 'https:'
    const port = url.port ? Number(url.port) : secure ? 2376 : 2375
    return { kind: 'tcp', hostname, port, tls: secure ? (tls ?? { verify: true }) : undefined }
  }
  if (url.protocol === 'ssh:') {
    return {
      kind: 'ssh',
      user: url.username ? decodeURIComponent(url.username) : undefined,
      hostname,
      port: url.port ? Number(url.port) : undefined,
    }
  }
  throw invalid(`unsupported scheme ${url.protocol.replace(/:$/, '')}`)
}

/**
 * A stable name for the engine in host key aliases: the same engine reached through DOCKER_HOST or a context is the
 * same name (`unix/var/run/docker.sock`, `10.0.0.5-2376`, `ssh-me@host-22`).
 */
export function engineId(transport: DockerTransport): string {
  switch (transport.kind) {
    case 'unix':
      return `unix${transport.socketPath.startsWith('/') ? '' : '/'}${transport.socketPath}`
    case 'tcp':
      return `${transport.hostname}-${transport.port}`
    case 'ssh':
      return `ssh-${transport.user ? `${transport.user}@` : ''}${transport.hostname}-${transport.port ?? 22}`
  }
}

function readOptional(file: string, read: (file: string) => Buffer): Buffer | undefined {
  try {
    return read(file)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined
    throw new AccessError(`cannot read ${file}: ${(error as Error).message}`, {
      exitCode: ExitCode.local,
      hint: 'check its permissions',
    })
  }
}
