/**
 * `akm-access doctor`: checks each link between the user and the management pod's sshd, in order, and says which one
 * is broken and what to do. A check whose prerequisite is broken is skipped with the reason; independent checks run
 * in parallel. Never throws for a broken link: the report carries it, and its exit code is the first failure's.
 */
import { homedir } from 'node:os'
import type { Duplex } from 'node:stream'
import type { Deps } from '../deps.js'
import {
  checkApiServer,
  checkCredentials,
  checkKubeconfig,
  checkNamespace,
  checkPermissions,
  checkPod,
  checkService,
  checkSshd,
  checkSshHostKey,
  checkSshLogin,
  type DoctorContext,
  type DoctorOptions,
} from '../doctor/checks.js'
import type { DockerDoctorContext } from '../doctor/docker-checks.js'
import { checkKnownHosts, checkLocalPort, checkNode, checkTerminal } from '../doctor/local-checks.js'
import { type CheckDefinition, runChecks, summarize } from '../doctor/runner.js'
import type { CheckResult, DoctorReport } from '../doctor/types.js'
import { defaultKnownHostsPath } from '../ssh/known-hosts.js'

export type { DoctorOptions } from '../doctor/checks.js'
export type { CheckResult, DoctorReport } from '../doctor/types.js'

export const doctorChecks: readonly CheckDefinition<DoctorContext>[] = [
  { id: 'kubeconfig', title: 'Kubeconfig', run: checkKubeconfig },
  { id: 'api-server', title: 'API server', requires: ['kubeconfig'], run: checkApiServer },
  { id: 'namespace', title: 'Namespace', requires: ['api-server'], run: checkNamespace },
  { id: 'permissions', title: 'Permissions', requires: ['namespace'], run: checkPermissions },
  // Waits for the permissions only to tell a denial (skip) from a failure; its request is already in flight.
  { id: 'pod', title: 'Management pod', requires: ['namespace'], after: ['permissions'], run: checkPod },
  // The Secret is worth checking whatever state the pod is in; the pod only says which Secret it reads.
  {
    id: 'credentials',
    title: 'SSH credentials',
    requires: ['namespace'],
    after: ['permissions', 'pod'],
    run: checkCredentials,
  },
  { id: 'sshd', title: 'sshd', requires: ['pod'], after: ['permissions'], run: checkSshd },
  { id: 'host-key', title: 'Host key', requires: ['sshd'], run: checkSshHostKey },
  { id: 'ssh-login', title: 'SSH login', requires: ['host-key', 'credentials'], run: checkSshLogin },
  { id: 'service', title: 'Service', requires: ['namespace'], after: ['permissions', 'pod'], run: checkService },
  { id: 'terminal', title: 'Terminal', run: async (context) => checkTerminal(context.io) },
  {
    id: 'known-hosts',
    title: 'known_hosts',
    run: async (context) => checkKnownHosts(context.options.knownHostsFile, context.homeDir),
  },
  { id: 'local-port', title: 'Local port', run: (context) => checkLocalPort(context.options.localPort) },
  { id: 'node', title: 'Node.js', run: async () => checkNode() },
]

/** The same chain for the docker-compose management container; the local side is shared. */
export const dockerDoctorChecks: readonly CheckDefinition<DockerDoctorContext>[] = [
  { id: 'docker-engine', title: 'Docker engine', run: (context) => docker().then((m) => m.checkDockerEngine(context)) },
  {
    id: 'container',
    title: 'Management container',
    requires: ['docker-engine'],
    run: (context) => docker().then((m) => m.checkContainer(context)),
  },
  {
    id: 'credentials',
    title: 'SSH credentials',
    requires: ['container'],
    run: (context) => docker().then((m) => m.checkDockerCredentials(context)),
  },
  {
    id: 'sshd',
    title: 'sshd',
    requires: ['container'],
    run: (context) => docker().then((m) => m.checkDockerSshd(context)),
  },
  {
    id: 'host-key',
    title: 'Host key',
    requires: ['sshd'],
    run: (context) => docker().then((m) => m.checkDockerHostKey(context)),
  },
  {
    id: 'ssh-login',
    title: 'SSH login',
    requires: ['host-key', 'credentials'],
    run: (context) => docker().then((m) => m.checkDockerLogin(context)),
  },
  { id: 'terminal', title: 'Terminal', run: async (context) => checkTerminal(context.io) },
  {
    id: 'known-hosts',
    title: 'known_hosts',
    run: async (context) => checkKnownHosts(context.options.knownHostsFile, context.homeDir),
  },
  { id: 'local-port', title: 'Local port', run: (context) => checkLocalPort(context.options.localPort) },
  { id: 'node', title: 'Node.js', run: async () => checkNode() },
]

/** The docker checks and their imports (docker-modem among them) load only for a docker run. */
const docker = () => import('../doctor/docker-checks.js')

export interface RunDoctorOptions extends Omit<DoctorOptions, 'knownHostsFile' | 'sshTimeoutMs'> {
  /** Default: ~/.config/akm-access/known_hosts. */
  knownHostsFile: string | undefined
  /** Default 10 s. */
  sshTimeoutMs?: number
  /** The docker-compose checks: `explicit` when --docker (or a flag implying it) was given. */
  docker?: {
    explicit: boolean
    context: string | undefined
    containerName: string | undefined
    streamMode: 'auto' | 'address' | 'exec'
    requestTimeout: string
    identityFile: string | undefined
  }
}

/** Told which checks will run (before any result), then each result as soon as it is known. */
export interface DoctorListener {
  start(checks: readonly CheckDefinition<never>[]): void
  result(result: CheckResult): void
}

export async function runDoctor(
  options: RunDoctorOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'backend' | 'logger'>,
  listener?: DoctorListener,
): Promise<DoctorReport> {
  const homeDir = deps.io.env.HOME || homedir()
  // Without --docker, the containers are checked only when nothing configures Kubernetes and a container was found.
  const useDocker =
    options.docker !== undefined &&
    (options.docker.explicit ||
      (await deps.backend().then(
        (backend) => backend.kind === 'docker',
        () => false,
      )))
  if (useDocker && options.docker) {
    const context: DockerDoctorContext = {
      options: {
        ...options,
        knownHostsFile: options.knownHostsFile ?? defaultKnownHostsPath(deps.io.env, homeDir),
        sshTimeoutMs: options.sshTimeoutMs ?? 10_000,
        dockerContext: options.docker.context,
        containerName: options.docker.containerName,
        streamMode: options.docker.streamMode,
        requestTimeout: options.docker.requestTimeout,
        identityFile: options.docker.identityFile,
      },
      io: deps.io,
      logger: deps.logger,
      homeDir,
      resources: [],
      engines: [],
    }
    listener?.start(dockerDoctorChecks)
    try {
      return summarize(await runChecks(dockerDoctorChecks, context, listener ? (r) => listener.result(r) : undefined))
    } finally {
      await Promise.all(context.resources.map(release))
      for (const engine of context.engines) engine.close()
    }
  }
  listener?.start(doctorChecks)
  const onResult = listener ? (result: CheckResult) => listener.result(result) : undefined
  const context: DoctorContext = {
    options: {
      ...options,
      knownHostsFile: options.knownHostsFile ?? defaultKnownHostsPath(deps.io.env, homeDir),
      sshTimeoutMs: options.sshTimeoutMs ?? 10_000,
    },
    io: deps.io,
    logger: deps.logger,
    kube: deps.kube,
    homeDir,
    resources: [],
  }
  try {
    return summarize(await runChecks(doctorChecks, context, onResult))
  } finally {
    await Promise.all(context.resources.map(release))
  }
}

/**
 * A stream whose end was sent (an SSH disconnect) is left to finish its closing handshake: destroyed in the middle,
 * its WebSocket would wait for a close frame it no longer reads, keeping the process alive for 30 s. Anything else
 * is cut at once.
 */
async function release(stream: Duplex): Promise<void> {
  if (stream.closed) return
  if (stream.writableEnded) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000)
      stream.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
  stream.destroy()
}
