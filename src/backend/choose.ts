/**
 * Kubernetes or docker-compose, decided once per run: `--docker` (or `--docker-context`, `--container-name`) says
 * docker-compose; otherwise Kubernetes, unless there is no Kubernetes configuration at all (no --kubeconfig, no
 * KUBECONFIG, no ~/.kube/config, not in a pod) and a Docker engine answers with a management container on it — then
 * that container, said once on stderr. A kubeconfig, even a broken one, always means Kubernetes: its error is shown.
 */
import { homedir } from 'node:os'
import type { GlobalFlags } from '../deps.js'
import type { DockerTarget } from '../docker/target.js'
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import { NoKubernetesConfiguration } from '../kube/kubeconfig.js'
import type { Logger } from '../log.js'
import { defaultKnownHostsPath } from '../ssh/known-hosts.js'
import { type Io, say } from '../terminal/io.js'
import type { Prompter } from '../terminal/prompter.js'

export type Backend = { kind: 'kubernetes' } | { kind: 'docker'; target: DockerTarget }

/** How long detection waits for a Docker engine that may not be there. */
const DETECTION_TIMEOUT_MS = 3000

export async function chooseBackend(
  io: Io,
  flags: GlobalFlags,
  logger: Logger,
  prompter: Prompter,
  kube: () => Promise<KubeClient>,
): Promise<Backend> {
  if (wantsDocker(flags)) return { kind: 'docker', target: await connectDocker(io, flags, logger, prompter) }
  try {
    await kube()
    return { kind: 'kubernetes' }
  } catch (error) {
    if (!isMissingKubeconfig(error, flags, io.env)) throw error
    let target: DockerTarget
    try {
      target = await connectDocker(io, flags, logger, prompter, DETECTION_TIMEOUT_MS)
    } catch (dockerError) {
      logger.debug(`no docker-compose installation either: ${(dockerError as Error).message}`)
      throw error
    }
    say(
      io,
      `no Kubernetes configuration; using the docker-compose management container ${target.name} on ${target.engine.endpoint.host}`,
    )
    return { kind: 'docker', target }
  }
}

export function wantsDocker(flags: GlobalFlags): boolean {
  return Boolean(flags.docker || flags['docker-context'] || flags['container-name'])
}

/**
 * The error kubeconfig.ts gives when nothing configures Kubernetes, and only when nothing was asked for: a
 * --kubeconfig or KUBECONFIG that names missing files is a mistake to report, not a reason to look elsewhere.
 */
export function isMissingKubeconfig(error: unknown, flags: GlobalFlags, env: NodeJS.ProcessEnv): boolean {
  return error instanceof NoKubernetesConfiguration && !flags.kubeconfig && !env.KUBECONFIG
}

async function connectDocker(
  io: Io,
  flags: GlobalFlags,
  logger: Logger,
  prompter: Prompter,
  connectTimeoutMs?: number,
): Promise<DockerTarget> {
  const [{ resolveDockerEndpoint }, { EngineClient }, { findManagementContainer }, { DockerTarget }, duration] =
    await Promise.all([
      import('../docker/endpoint.js'),
      import('../docker/engine-client.js'),
      import('../docker/container.js'),
      import('../docker/target.js'),
      import('../kube/duration.js'),
    ])
  const homeDir = io.env.HOME || safeHomedir()
  const endpoint = resolveDockerEndpoint(flags['docker-context'], { env: io.env, homeDir })
  const engine = await EngineClient.connect(endpoint, {
    logger,
    requestTimeoutMs: duration.parseRequestTimeout(flags['request-timeout'] ?? '30s'),
    ...(connectTimeoutMs ? { connectTimeoutMs } : {}),
  })
  try {
    const container = await findManagementContainer(engine, { containerName: flags['container-name'] }, prompter)
    logger.debug(`management container ${container.name} (${container.id.slice(0, 12)}), ${container.status}`)
    return new DockerTarget(engine, container, {
      knownHostsFile: defaultKnownHostsPath(io.env, homeDir ?? ''),
      streamMode: streamMode(flags['docker-stream']),
      logger,
    })
  } catch (error) {
    engine.close()
    throw error
  }
}

function streamMode(value: string | undefined): 'auto' | 'address' | 'exec' {
  if (value === undefined || value === 'auto' || value === 'address' || value === 'exec') return value ?? 'auto'
  throw new AccessError(`--docker-stream must be auto, address or exec (not ${value})`, { exitCode: ExitCode.usage })
}

function safeHomedir(): string | undefined {
  try {
    return homedir() || undefined
  } catch {
    return undefined
  }
}
