/**
 * Which container is the docker-compose management container: `--container-name`, else the container of the compose
 * service `management-container` (its labels, whatever the project is called), else the one named
 * `management-container` (the compose file's container_name). Read from `GET /containers/json` and
 * `GET /containers/{id}/json`; what the rest needs (state, address, environment, compose labels) is kept as plain data.
 */
import { AccessError, ExitCode } from '../errors.js'
import type { Prompter } from '../terminal/prompter.js'
import { EngineApiError, type EngineClient } from './engine-client.js'

export const MANAGEMENT_SERVICE = 'management-container'
export const SERVICE_LABEL = 'com.docker.compose.service'
export const PROJECT_LABEL = 'com.docker.compose.project'

export interface ManagementContainer {
  id: string
  /** Without the API's leading slash. */
  name: string
  image: string
  status: string
  running: boolean
  exitCode: number
  startedAt: string | undefined
  finishedAt: string | undefined
  /** The compose project and service, when compose created it. */
  project: string | undefined
  service: string | undefined
  /** `NAME=value` as the container runs with it (compose's environment and the image's). */
  env: string[]
  /** Its network (the first, as compose attaches one), address and gateway there; undefined without one. */
  network: string | undefined
  address: string | undefined
  gateway: string | undefined
}

interface ContainerJson {
  Id: string
  Name?: string
  State?: { Status?: string; Running?: boolean; ExitCode?: number; StartedAt?: string; FinishedAt?: string }
  Config?: { Image?: string; Env?: string[] | null; Labels?: Record<string, string> | null }
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string; Gateway?: string }> | null }
}

interface ContainerSummary {
  Id: string
  Names?: string[]
  State?: string
  Labels?: Record<string, string> | null
}

export interface FindOptions {
  /** --container-name: this container (a name or an id). */
  containerName?: string | undefined
}

/** The management container, running or not (callers that need it running say so with `requireRunning`). */
export async function findManagementContainer(
  engine: EngineClient,
  options: FindOptions,
  prompter: Prompter | undefined,
): Promise<ManagementContainer> {
  if (options.containerName) return inspectContainer(engine, options.containerName, 'named')
  const listed = await engine.request<ContainerSummary[]>('GET', '/containers/json', {
    // The map form of filters, as the docker CLI sends it.
    query: { all: true, filters: { label: { [`${SERVICE_LABEL}=${MANAGEMENT_SERVICE}`]: true } } },
  })
  if (listed.length === 0) return inspectContainer(engine, MANAGEMENT_SERVICE, 'default')
  // Several compose projects may run one each: the running ones first, and a question only if that is not enough.
  const running = listed.filter((container) => container.State === 'running')
  const candidates = running.length > 0 ? running : listed
  const chosen = candidates.length === 1 ? candidates[0]! : await pick(candidates, engine, prompter)
  return inspectContainer(engine, chosen.Id, 'named')
}

async function pick(
  candidates: ContainerSummary[],
  engine: EngineClient,
  prompter: Prompter | undefined,
): Promise<ContainerSummary> {
  const label = (container: ContainerSummary) =>
    `${nameOf(container.Names?.[0])} (project ${container.Labels?.[PROJECT_LABEL] ?? '?'}, ${container.State ?? '?'})`
  if (!prompter?.canPrompt) {
    throw new AccessError(
      `several containers on ${engine.endpoint.host} are a management container: ${candidates.map(label).join(', ')}`,
      { exitCode: ExitCode.usage, hint: `choose one with --container-name ${nameOf(candidates[0]?.Names?.[0])}` },
    )
  }
  const id = await prompter.select(
    'Several containers are a management container. Which one?',
    candidates.map((container) => ({
      value: container.Id,
      label: nameOf(container.Names?.[0]),
      description: `project ${container.Labels?.[PROJECT_LABEL] ?? '?'}, ${container.State ?? '?'}`,
    })),
  )
  return candidates.find((container) => container.Id === id) ?? candidates[0]!
}

/** `GET /containers/{ref}/json` as a ManagementContainer; a 404 is "no management container" (exit 9). */
export async function inspectContainer(
  engine: EngineClient,
  reference: string,
  how: 'named' | 'default',
): Promise<ManagementContainer> {
  let json: ContainerJson
  try {
    json = await engine.request<ContainerJson>('GET', `/containers/${encodeURIComponent(reference)}/json`)
  } catch (error) {
    if (!(error instanceof EngineApiError && error.httpStatus === 404)) throw error
    throw how === 'named'
      ? new AccessError(`no container named ${reference} on the Docker engine at ${engine.endpoint.host}`, {
          exitCode: ExitCode.podNotFound,
          hint: 'list the containers with: docker ps -a',
        })
      : new AccessError(`no docker-compose management container on the Docker engine at ${engine.endpoint.host}`, {
          exitCode: ExitCode.podNotFound,
          hint: `is Akamas installed with docker-compose on this engine (${engine.endpoint.from})? Name the container with --container-name (docker ps -a lists them)`,
        })
  }
  return toContainer(json)
}

export function toContainer(json: ContainerJson): ManagementContainer {
  const labels = json.Config?.Labels ?? {}
  const networks = Object.entries(json.NetworkSettings?.Networks ?? {})
  const [network, settings] = networks[0] ?? []
  const state = json.State ?? {}
  return {
    id: json.Id,
    name: nameOf(json.Name) || json.Id.slice(0, 12),
    image: json.Config?.Image ?? '',
    status: state.Status ?? 'unknown',
    running: state.Running === true && state.Status !== 'paused',
    exitCode: state.ExitCode ?? 0,
    startedAt: realTime(state.StartedAt),
    finishedAt: realTime(state.FinishedAt),
    project: labels[PROJECT_LABEL],
    service: labels[SERVICE_LABEL],
    env: json.Config?.Env ?? [],
    network,
    address: settings?.IPAddress || undefined,
    gateway: settings?.Gateway || undefined,
  }
}

/** Exec and streams need a running container: otherwise exit 10, with how it ended and how to start it. */
export function requireRunning(container: ManagementContainer): void {
  if (container.running) return
  throw new AccessError(`management container ${container.name} is not running: ${describeState(container)}`, {
    exitCode: ExitCode.podNotReady,
    hint: `start it with: docker compose${container.project ? ` -p ${container.project}` : ''} up -d${
      container.service ? ` ${container.service}` : ''
    } (or docker start ${container.name}); docker logs ${container.name} shows why it stopped`,
  })
}

export function describeState(container: ManagementContainer): string {
  if (container.running) return `running since ${container.startedAt ?? 'an unknown time'}`
  if (container.status === 'exited') {
    return `exited (${container.exitCode})${container.finishedAt ? ` at ${container.finishedAt}` : ''}`
  }
  return container.status
}

/** A variable of the container's environment, as the last definition sets it. */
export function envValue(container: ManagementContainer, name: string): string | undefined {
  let value: string | undefined
  for (const entry of container.env) {
    const at = entry.indexOf('=')
    if ((at < 0 ? entry : entry.slice(0, at)) === name) value = at < 0 ? undefined : entry.slice(at + 1)
  }
  return value
}

/** ALLOW_PASSWORD as the image reads it: password login only when it is true (absent means off). */
export function passwordLoginOf(container: ManagementContainer): boolean {
  return /^(true|yes|1)$/i.test(envValue(container, 'ALLOW_PASSWORD')?.trim() ?? '')
}

function nameOf(apiName: string | undefined): string {
  return (apiName ?? '').replace(/^\//, '')
}

/** dockerd prints Go's zero time for "never". */
function realTime(value: string | undefined): string | undefined {
  return value && !value.startsWith('0001-01-01') ? value : undefined
}
