/**
 * The composition root: the only place that builds the real adapters. Expensive ones are lazy, so a command that
 * never talks to the cluster never reads a kubeconfig, and `--help` imports nothing heavy.
 */
import type { Backend } from './backend/choose.js'
import type { KubeClient } from './kube/client.js'
import type { KubeConnection } from './kube/types.js'
import { createLogger, type Logger } from './log.js'
import type { Io } from './terminal/io.js'
import { createPrompter, type Prompter } from './terminal/prompter.js'

export interface GlobalFlags {
  kubeconfig?: string | undefined
  context?: string | undefined
  namespace?: string | undefined
  'request-timeout'?: string | undefined
  debug?: boolean | undefined
  /** The docker-compose backend (src/cli/docker-flags.ts). */
  docker?: boolean | undefined
  'docker-context'?: string | undefined
  'container-name'?: string | undefined
  'docker-stream'?: string | undefined
}

export interface Deps {
  io: Io
  logger: Logger
  prompter: Prompter
  /** The API client for the resolved kubeconfig and context, created on first use. */
  kube(): Promise<KubeClient>
  /** Kubernetes or the docker-compose management container (backend/choose.ts), decided on first use. */
  backend(): Promise<Backend>
  /** Releases what was opened (kept-alive connections), so that the process can exit at once. */
  close(): Promise<void>
}

export function createDeps(io: Io, flags: GlobalFlags): Deps {
  const logger = createLogger(Boolean(flags.debug), (text) => io.stderr.write(text))
  let client: Promise<KubeClient> | undefined
  let backend: Promise<Backend> | undefined
  const prompter = createPrompter(io)
  const kube = () => {
    client ??= createKubeClient(io, flags, logger)
    return client
  }
  return {
    io,
    logger,
    prompter,
    kube,
    backend() {
      backend ??= import('./backend/choose.js').then(({ chooseBackend }) =>
        chooseBackend(io, flags, logger, prompter, kube),
      )
      return backend
    },
    async close() {
      const opened = client
      client = undefined
      const chosen = backend
      backend = undefined
      if (chosen) {
        await chosen.then(
          (decided) => {
            if (decided.kind === 'docker') decided.target.close()
          },
          () => {},
        )
      }
      if (opened)
        await opened.then(
          (kube) => kube.close(),
          () => {},
        )
    },
  }
}

async function createKubeClient(io: Io, flags: GlobalFlags, logger: Logger): Promise<KubeClient> {
  const [{ resolveConnection, defaultKubeEnvironment }, { KubeClient }, { parseRequestTimeout }, { warmUpSettled }] =
    await Promise.all([
      import('./kube/kubeconfig.js'),
      import('./kube/client.js'),
      import('./kube/duration.js'),
      import('./kube/warm-connections.js'),
    ])
  // The connections bin/run.js started opening are parked before the first request looks for one.
  await warmUpSettled()
  const requestTimeoutMs = parseRequestTimeout(flags['request-timeout'] ?? '30s')
  const environment = defaultKubeEnvironment(io.env)
  const connection: KubeConnection = await resolveConnection(
    { kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace },
    environment,
  )
  logger.debug(
    `context ${connection.context?.value ?? '(in-cluster)'} (${connection.context?.from ?? 'service account'}), ` +
      `server ${connection.cluster.server}, namespace ${connection.namespace.value} (${connection.namespace.from})`,
  )
  return new KubeClient(connection, {
    requestTimeoutMs,
    env: io.env,
    logger,
    homeDir: environment.homeDir,
  })
}
