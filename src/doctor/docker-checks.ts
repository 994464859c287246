/**
 * `akm-access doctor --docker`: the links from the user to sshd in the docker-compose management container. The
 * Docker engine (where DOCKER_HOST, the context or the default socket leads, and its version), the container (found,
 * running), the SSH credentials (ALLOW_PASSWORD, CUSTOM_PASSWORD or the generated password file), sshd's banner
 * through the same stream the commands use, its host key against known_hosts, and a login; the local side is the
 * same as for Kubernetes.
 */
import type { Duplex } from 'node:stream'
import { describeState, findManagementContainer, requireRunning } from '../docker/container.js'
import { type DockerEndpoint, resolveDockerEndpoint } from '../docker/endpoint.js'
import { EngineClient } from '../docker/engine-client.js'
import { directlyReachable } from '../docker/sshd-stream.js'
import { DockerTarget } from '../docker/target.js'
import { ExitCode } from '../errors.js'
import { parseRequestTimeout } from '../kube/duration.js'
import type { Logger } from '../log.js'
import { registerSecret } from '../redact.js'
import type { HostKeyCheck } from '../ssh/known-hosts.js'
import { fetchHostKey, preparePrivateKey } from '../ssh/ssh-client.js'
import type { Io } from '../terminal/io.js'
import { type DoctorOptions, fail, judgeHostKey, type LoginCredentials, ok, tryLogin, warn } from './checks.js'
import { failedWith } from './runner.js'
import { readSshBanner } from './ssh-banner.js'
import type { CheckOutcome } from './types.js'

export interface DockerDoctorOptions extends DoctorOptions {
  dockerContext: string | undefined
  containerName: string | undefined
  streamMode: 'auto' | 'address' | 'exec'
  requestTimeout: string
  identityFile: string | undefined
}

export interface DockerDoctorContext {
  readonly options: DockerDoctorOptions
  readonly io: Io
  readonly logger: Logger
  readonly homeDir: string | undefined
  readonly resources: Duplex[]
  /** Closed when the run ends. */
  readonly engines: EngineClient[]
  endpoint?: DockerEndpoint
  engine?: EngineClient
  target?: DockerTarget
  credentials?: LoginCredentials
  sshStream?: Duplex
  hostKey?: { blob: Buffer; status: HostKeyCheck['status'] }
}

// 1. the engine

export async function checkDockerEngine(context: DockerDoctorContext): Promise<CheckOutcome> {
  let endpoint: DockerEndpoint
  try {
    endpoint = resolveDockerEndpoint(context.options.dockerContext, { env: context.io.env, homeDir: context.homeDir })
  } catch (error) {
    return failedWith(error)
  }
  context.endpoint = endpoint
  const started = performance.now()
  const engine = await EngineClient.connect(endpoint, {
    logger: context.logger,
    requestTimeoutMs: parseRequestTimeout(context.options.requestTimeout),
  })
  context.engines.push(engine)
  context.engine = engine
  const elapsed = Math.round(performance.now() - started)
  const { version } = engine
  const platform = version.Platform?.Name ? ` (${version.Platform.Name})` : ''
  return ok(
    [
      `Docker Engine ${version.Version ?? '(version not disclosed)'}${platform} at ${endpoint.host} (answered in ${elapsed} ms)`,
      `from ${endpoint.from}`,
      `API ${engine.apiVersion}${version.ApiVersion && version.ApiVersion !== engine.apiVersion ? ` (the engine's is ${version.ApiVersion})` : ''}, ${version.Os ?? '?'}/${version.Arch ?? '?'}`,
      endpoint.transport.kind === 'tcp'
        ? endpoint.transport.tls
          ? endpoint.transport.tls.verify
            ? 'TLS, the engine’s certificate verified'
            : 'TLS, the engine’s certificate NOT verified'
          : 'plain TCP: no TLS (anyone on the network could use this engine)'
        : endpoint.transport.kind === 'ssh'
          ? 'through OpenSSH (docker system dial-stdio)'
          : `unix socket ${endpoint.transport.socketPath}`,
    ].join('\n'),
  )
}

// 2. the container

export async function checkContainer(context: DockerDoctorContext): Promise<CheckOutcome> {
  const engine = context.engine!
  const container = await findManagementContainer(engine, { containerName: context.options.containerName }, undefined)
  const target = new DockerTarget(engine, container, {
    knownHostsFile: context.options.knownHostsFile,
    streamMode: context.options.streamMode,
    logger: context.logger,
  })
  context.target = target
  const compose = container.project
    ? `compose project ${container.project}, service ${container.service ?? '?'}`
    : 'not created by docker compose'
  const facts = [
    `${container.id.slice(0, 12)} (${compose}), image ${container.image}`,
    container.network
      ? `network ${container.network}${container.address ? `, address ${container.address}` : ''}`
      : 'no network',
  ]
  try {
    requireRunning(container)
  } catch (error) {
    const outcome = failedWith(error)
    return { ...outcome, detail: [outcome.detail, ...facts].join('\n') }
  }
  return ok([`${container.name} is ${describeState(container)}`, ...facts].join('\n'))
}

// 3. credentials

export async function checkDockerCredentials(context: DockerDoctorContext): Promise<CheckOutcome> {
  const target = context.target!
  const found = await target.credentials()
  const login = found.passwordLogin
    ? 'password login is enabled (ALLOW_PASSWORD is true)'
    : 'password login is disabled (ALLOW_PASSWORD is not true)'
  let keyFact = 'no key given (--identity-file)'
  let usableKey: string | undefined
  let keyProblem: LoginCredentials['keyProblem']
  const identityFile = context.options.identityFile
  if (identityFile) {
    let key: string
    try {
      const { readFileSync } = await import('node:fs')
      key = readFileSync(identityFile, 'utf8')
    } catch (error) {
      return fail(
        `cannot read the identity file ${identityFile}: ${(error as Error).message}`,
        '--identity-file names a private key file',
        ExitCode.local,
      )
    }
    registerSecret(key)
    const check = await preparePrivateKey(key, undefined)
    if (check.ok) {
      usableKey = check.key
      keyFact = `the key in ${identityFile}`
    } else {
      keyProblem = check.reason === 'unusable' ? 'unusable' : 'needs-passphrase'
      keyFact = `the key in ${identityFile} ${check.reason === 'unusable' ? `cannot be used: ${check.message}` : 'is encrypted'}`
    }
  }
  const usablePassword = found.passwordLogin ? found.password : undefined
  context.credentials = { source: found.source, privateKey: usableKey, password: usablePassword, keyProblem }
  const passwordFact = found.password !== undefined ? `a password from ${found.source}` : 'no password'
  const detail = [`${passwordFact}; ${keyFact}`, login].join('\n')
  if (usableKey !== undefined || usablePassword !== undefined) return ok(detail)
  if (keyProblem === 'needs-passphrase') {
    return warn(detail, 'akm-access ssh asks for the passphrase in a terminal, or reads it with --passphrase-file')
  }
  if (found.password === undefined) {
    return fail(detail, found.unusableHint?.hint ?? 'set CUSTOM_PASSWORD in the compose file', ExitCode.badCredentials)
  }
  return fail(
    detail,
    found.unusableHint?.hint ?? 'log in with your own key: --identity-file FILE',
    ExitCode.passwordDisabled,
  )
}

// 4. sshd

export async function checkDockerSshd(context: DockerDoctorContext): Promise<CheckOutcome> {
  const target = context.target!
  const { remotePort } = context.options
  const where = `${target.name}:${remotePort}`
  try {
    const stream = await target.openStream(remotePort)
    stream.on('error', () => {})
    context.resources.push(stream)
    const banner = await readSshBanner(stream, { timeoutMs: context.options.sshTimeoutMs, where })
    context.sshStream = stream
    const how =
      stream.via.kind === 'address'
        ? `at the container's address ${stream.via.address}:${remotePort} (this machine is on network ${target.container.network})`
        : `through a bridge exec'd in the container (to ${stream.via.address}:${remotePort}), over the Docker engine`
    const note =
      stream.via.kind === 'exec' && context.options.streamMode === 'auto'
        ? directlyReachable(target.engine, target.container)
          ? '\nthe container’s address did not answer, so the engine carried it'
          : '\nthe container’s address is not reachable from here (Docker Desktop, a remote engine): the engine carries it'
        : ''
    return ok(`${banner.line}\n${how}${note}`)
  } catch (error) {
    if (error instanceof Error && 'exitCode' in error && error.exitCode !== ExitCode.sshUnreachable) {
      return failedWith(error)
    }
    return fail(
      `nothing answers as sshd on ${where}: ${(error as Error).message}`,
      `sshd does not answer in the container: see its messages with docker logs ${target.name}; docker restart ${target.name} starts it again`,
      ExitCode.sshUnreachable,
    )
  }
}

// 5. host key

export async function checkDockerHostKey(context: DockerDoctorContext): Promise<CheckOutcome> {
  const target = context.target!
  const blob = await fetchHostKey(context.sshStream!, {
    timeoutMs: context.options.sshTimeoutMs,
    logger: context.logger,
  })
  return judgeHostKey(context, blob, target.hostKeyAlias, 'container')
}

// 6. login

export function checkDockerLogin(context: DockerDoctorContext): Promise<CheckOutcome> {
  const target = context.target!
  return tryLogin(context, () => target.openStream(context.options.remotePort))
}
