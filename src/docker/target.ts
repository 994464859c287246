/**
 * The docker-compose management container as a ManagementTarget: processes are execs through the Engine API, streams
 * to sshd go to its address or through an exec'd bridge (sshd-stream.ts), and the SSH credentials are what the
 * compose file gave it — CUSTOM_PASSWORD, else the password the image generated into /work/akamas_password — with
 * ALLOW_PASSWORD saying whether sshd takes passwords at all. Execs and streams go to the container by name, so a
 * container that compose re-created (a new id) is still the one reached.
 */
import { sleep } from '../abortable.js'
import type { ManagementTarget, TargetExecOptions, TargetStreamOptions } from '../backend/target.js'
import { AccessError, ExitCode } from '../errors.js'
import type { Logger } from '../log.js'
import { registerSecret } from '../redact.js'
import type { RemoteSession } from '../session/remote-session.js'
import type { Credentials } from '../target/find-target.js'
import { envValue, inspectContainer, type ManagementContainer, passwordLoginOf, requireRunning } from './container.js'
import { engineId } from './endpoint.js'
import type { EngineClient } from './engine-client.js'
import { openDockerExec } from './exec-session.js'
import { type ContainerStream, openContainerStream, type StreamMode } from './sshd-stream.js'

/** Where the image keeps the password it generates when CUSTOM_PASSWORD is not set. */
export const CONTAINER_PASSWORD_FILE = '/work/akamas_password'

export interface DockerTargetOptions {
  knownHostsFile: string
  streamMode: StreamMode
  logger: Logger
}

export interface WaitOptions {
  /** Epoch ms until which a stopped or missing container is waited for (restarts, `docker compose up`). */
  deadline: number
  signal?: AbortSignal | undefined
  onRetry?: (error: Error) => void
}

export class DockerTarget implements ManagementTarget {
  readonly kind = 'docker'
  readonly noun = 'container'
  knownHostsFile: string

  constructor(
    readonly engine: EngineClient,
    /** As last inspected. */
    public container: ManagementContainer,
    private readonly options: DockerTargetOptions,
  ) {
    this.knownHostsFile = options.knownHostsFile
  }

  get name(): string {
    return this.container.name
  }

  /** `akm/docker/<engine>/<compose project>/<service>`: the same across re-creations of the container. */
  get hostKeyAlias(): string {
    const { project, service, name } = this.container
    return ['akm', 'docker', engineId(this.engine.endpoint.transport), project ?? '_', service ?? name]
      .join('/')
      .replace(/\/+/g, '/')
      .replace(/[^A-Za-z0-9._/-]/g, '_')
  }

  async exec(options: TargetExecOptions): Promise<RemoteSession> {
    requireRunning(this.container)
    return openDockerExec(this.engine, this.container.name, {
      argv: options.argv,
      tty: options.tty,
      initialSize: options.initialSize,
      workingDir: '/work',
      ...(options.env ? { env: options.env } : {}),
      ...(options.keepaliveMs ? { keepaliveMs: options.keepaliveMs } : {}),
      logger: this.options.logger,
    })
  }

  async openStream(port: number, options: TargetStreamOptions = {}): Promise<ContainerStream> {
    requireRunning(this.container)
    options.signal?.throwIfAborted()
    return openContainerStream(this.engine, this.container, port, {
      mode: this.options.streamMode,
      keepaliveMs: options.keepaliveMs,
      logger: this.options.logger,
    })
  }

  /** Inspects the container again (by name: a re-created container is found under the same one). */
  async refresh(): Promise<ManagementContainer> {
    this.container = await inspectContainer(this.engine, this.container.name, 'named')
    return this.container
  }

  /**
   * A stream for a long-running tunnel (forward, proxy): the container is looked at afresh (its address may have
   * changed with a restart), and while it is stopped, missing or refusing, we wait until the deadline.
   */
  async openStreamWaiting(
    port: number,
    wait: WaitOptions,
    options: TargetStreamOptions = {},
  ): Promise<ContainerStream> {
    let pauseMs = 250
    for (;;) {
      wait.signal?.throwIfAborted()
      try {
        await this.refresh()
        return await this.openStream(port, { ...options, ...(wait.signal ? { signal: wait.signal } : {}) })
      } catch (error) {
        const retriable =
          error instanceof AccessError &&
          (error.exitCode === ExitCode.podNotReady ||
            error.exitCode === ExitCode.podNotFound ||
            error.exitCode === ExitCode.sshUnreachable)
        if (!retriable || Date.now() >= wait.deadline) throw error
        wait.onRetry?.(error)
        await sleep(Math.min(pauseMs, Math.max(0, wait.deadline - Date.now())), wait.signal)
        pauseMs = Math.min(pauseMs * 2, 2000)
      }
    }
  }

  /**
   * CUSTOM_PASSWORD from the container's configuration (even while it is stopped), else the generated password from
   * /work/akamas_password (which needs it running). ALLOW_PASSWORD says whether sshd accepts it.
   */
  async credentials(): Promise<Credentials> {
    const container = this.container
    const passwordLogin = passwordLoginOf(container)
    const custom = envValue(container, 'CUSTOM_PASSWORD')
    let password: string | undefined
    let source: string
    if (custom) {
      password = custom
      source = `CUSTOM_PASSWORD of container ${container.name}`
    } else {
      source = `file ${CONTAINER_PASSWORD_FILE} in container ${container.name}`
      password = (await this.readPasswordFile()) || undefined
    }
    registerSecret(password)
    return {
      password,
      privateKey: undefined,
      source,
      passwordLogin,
      unusableHint:
        password === undefined
          ? {
              message: `no SSH password for container ${container.name}: CUSTOM_PASSWORD is not set and ${CONTAINER_PASSWORD_FILE} is missing or empty`,
              hint: 'set CUSTOM_PASSWORD in the compose file, or log in with your own key: --identity-file FILE',
            }
          : {
              message: `password login is disabled in container ${container.name} (ALLOW_PASSWORD is not true), and no key was given`,
              hint: 'log in with your own key, authorized in the container: --identity-file ~/.ssh/id_ed25519 (or set ALLOW_PASSWORD=true in the compose file)',
            },
    }
  }

  /** The generated password, or '' when the file is missing or empty. */
  private async readPasswordFile(): Promise<string> {
    const session = await this.exec({ argv: ['cat', CONTAINER_PASSWORD_FILE], tty: false })
    session.stdin.end()
    const chunks: Buffer[] = []
    session.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
    session.stderr?.resume()
    const end = await session.ended
    if (end.kind === 'lost') {
      throw new AccessError(`reading ${CONTAINER_PASSWORD_FILE} in container ${this.container.name}: ${end.reason}`, {
        exitCode: ExitCode.connectionLost,
        hint: 'run the command again',
      })
    }
    if (end.kind !== 'exit' || end.code !== 0) return ''
    return Buffer.concat(chunks)
      .toString('utf8')
      .replace(/\r?\n$/, '')
  }

  close(): void {
    this.engine.close()
  }
}
