/**
 * The Docker sandbox: the management container as docker-compose runs it, behind an emulated Docker Engine API
 * (engine.ts) that the real `docker` CLI and akm-access talk to, with a scenario API for tests.
 *
 *   const docker = await DockerSandbox.start({ customPassword: 'secret' })
 *   spawn('docker', ['exec', 'management-container', 'id'], { env: { PATH, ...docker.dockerEnv() } })
 *   docker.createContext('akamas')   // a Docker context in the sandbox's DOCKER_CONFIG
 *   await docker.restartContainer()  // new processes, same /work
 *   await docker.stop()
 *
 * The container is a pod runtime (../pod-runtime.ts): its processes run as `akamas` in a private mount and UTS
 * namespace with /work bind-mounted from `workDir`, its hostname is the container's short id (as Docker sets it),
 * and a real OpenSSH sshd stands for its port 22 (reachable with `dial(22)`, as through the compose network).
 *
 * Its network, emulated with the loopback range: the container shares this machine's network namespace (no root-only
 * veth plumbing, and no traffic to a private range that is not ours), so instead of 172.18.0.2 on a bridge it gets
 * an address of its own in 127.18.0.0/16 (`ipAddress`, unique per container, kept across restarts), which is its
 * `NetworkSettings.Networks.<net>.IPAddress`, and its sshd listens on that address's port 22 — not on a random
 * port. So the two ways a client reaches sshd without a published port behave as on a Linux host with real Docker:
 *   - the container's address: `connect(IPAddress, 22)` from this machine reaches sshd;
 *   - a bridge run inside the container (exec) that connects to its own IPAddress:22 reaches the same sshd.
 * The one difference: 127.0.0.1:22 inside the container is this machine's port 22, not the container's sshd (a real
 * container has a loopback of its own), so an in-container bridge must target the container's own address — which is
 * also right on real Docker, where sshd listens on all of the container's addresses.
 *
 * The image's start-up, as emulated here: ALLOW_PASSWORD turns sshd's password login on; CUSTOM_PASSWORD is the
 * password of `akamas`; without it a random password is generated and kept in /work/akamas_password. Since /work
 * persists, a container started again reuses the password found there (an assumption about the image: it keeps the
 * generated password rather than making a new one at every start).
 */
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair, type KeyPair } from '../keys.js'
import { createPodRuntime, type NamespacedPodRuntime, POD_HOME, POD_PATH, POD_USER_NAME } from '../pod-runtime.js'
import {
  DockerEngine,
  type EngineContainer,
  type EngineFaults,
  type EngineVersion,
  type RequestRecord,
} from './engine.js'

export interface DockerSandboxOptions {
  /** Parent folder for the sandbox's files (default: the OS temp dir). Keep it short: the socket lives in it. */
  root?: string
  /** ALLOW_PASSWORD: sshd accepts password logins (default true). */
  allowPassword?: boolean
  /** CUSTOM_PASSWORD: the password of `akamas`; absent, a random one is generated into /work/akamas_password. */
  customPassword?: string | undefined
  /** compose `container_name` (default `management-container`). */
  containerName?: string
  /** The compose project (default `akamas`). */
  project?: string
  /** The compose service (default `management-container`). */
  service?: string
  /** The network the container is on (default `akamas`). */
  network?: string
  image?: string
  /** Also serve the API on loopback TCP (default true). */
  tcp?: boolean
  engineVersion?: EngineVersion
}

export interface DockerContext {
  name: string
  /** The DOCKER_CONFIG folder that holds it. */
  configDir: string
  /** Its meta.json. */
  metaPath: string
}

/** Akamas's registry path for the image; the tag is illustrative (match the container by name or labels, not tag). */
export const DEFAULT_IMAGE = '485790562880.dkr.ecr.us-east-2.amazonaws.com/akamas/management-container:3.6.0'
const COMPOSE_VERSION = '2.32.4'

export class DockerSandbox {
  readonly dir: string
  /** The host folder the container sees as /work (persists across restarts and re-creation). */
  readonly workDir: string
  readonly socketPath: string
  /**
   * A DOCKER_CONFIG folder for the docker CLI (and akm-access) in tests, so that the user's ~/.docker (contexts,
   * credentials, plugins) is never read.
   */
  readonly dockerConfigDir: string
  /** The key pair whose public half sshd authorizes for `akamas`. */
  readonly userKey: KeyPair
  /** sshd's host key (its public half as an OpenSSH line); `recreateContainer({ newHostKey: true })` replaces it. */
  hostKey: { privateKeyPath: string; publicKey: string }
  readonly engine: DockerEngine
  private current: EngineContainer | undefined
  private runtime: NamespacedPodRuntime | undefined
  private currentPassword = ''
  private readonly networkId = randomHex(64)
  private readonly imageId = `sha256:${randomHex(64)}`
  private readonly containerName: string
  private readonly project: string
  private readonly service: string
  private readonly networkName: string

  private constructor(
    dir: string,
    private readonly options: DockerSandboxOptions,
  ) {
    this.dir = dir
    this.workDir = join(dir, 'work')
    this.socketPath = join(dir, 'docker.sock')
    this.dockerConfigDir = join(dir, 'docker-config')
    mkdirSync(this.workDir, { recursive: true })
    mkdirSync(this.dockerConfigDir, { recursive: true, mode: 0o700 })
    this.userKey = generateKeyPair(join(dir, 'keys'), 'user', 'ed25519')
    const host = generateKeyPair(join(dir, 'keys'), 'host', 'ed25519')
    this.hostKey = { privateKeyPath: host.path, publicKey: host.publicKey }
    this.containerName = options.containerName ?? 'management-container'
    this.project = options.project ?? 'akamas'
    this.service = options.service ?? 'management-container'
    this.networkName = options.network ?? 'akamas'
    this.engine = new DockerEngine({
      socketPath: this.socketPath,
      tcp: options.tcp ?? true,
      ...(options.engineVersion ? { version: options.engineVersion } : {}),
      lifecycle: {
        start: () => this.startContainer(),
        stop: () => this.stopContainer(),
        restart: () => this.restartContainer(),
      },
    })
  }

  /** Starts the engine and one running management container. */
  static async start(options: DockerSandboxOptions = {}): Promise<DockerSandbox> {
    const root = options.root ?? tmpdir()
    mkdirSync(root, { recursive: true })
    const sandbox = new DockerSandbox(mkdtempSync(join(root, 'akm-docker-')), options)
    try {
      await sandbox.engine.listen()
      sandbox.createContainer()
      await sandbox.startContainer()
    } catch (error) {
      await sandbox.stop()
      throw error
    }
    return sandbox
  }

  /** `unix:///…/docker.sock`, for DOCKER_HOST or a context's endpoint. */
  get dockerHost(): string {
    return `unix://${this.socketPath}`
  }

  /** `tcp://127.0.0.1:PORT` (plain HTTP), unless started with `tcp: false`. */
  get tcpHost(): string | undefined {
    return this.engine.tcpHost
  }

  get containerId(): string {
    return this.requireContainer().id
  }

  /** The 12-digit id: what `docker ps` shows, and the container's hostname. */
  get shortId(): string {
    return this.containerId.slice(0, 12)
  }

  get name(): string {
    return this.containerName
  }

  /** The password of `akamas` (CUSTOM_PASSWORD, or the generated one in /work/akamas_password). */
  get password(): string {
    return this.currentPassword
  }

  /** The container's Env, as `docker inspect` shows it. */
  get env(): string[] {
    return [...this.requireContainer().config.env]
  }

  /** The container as the engine serves it (state, labels, network…). */
  get container(): EngineContainer {
    return this.requireContainer()
  }

  /** The processes of the running container. */
  get pod(): NamespacedPodRuntime {
    if (!this.runtime) throw new Error(`the container ${this.containerName} is not running`)
    return this.runtime
  }

  /** The port sshd listens on (22, at `ipAddress`), or undefined while stopped. */
  get sshPort(): number | undefined {
    return this.runtime?.sshPort
  }

  /** The container's address on its network (in 127.18.0.0/16, see above); its sshd listens on port 22 there. */
  get ipAddress(): string {
    return this.requireContainer().network.ipAddress
  }

  /** Connects to a container port (22: sshd), as a peer on the compose network would. */
  dial(port = 22): Promise<Socket> {
    return this.pod.dial(port)
  }

  get requests(): RequestRecord[] {
    return this.engine.requests
  }

  get faults(): EngineFaults {
    return this.engine.faults
  }

  clearFaults(): void {
    for (const key of Object.keys(this.engine.faults)) delete this.engine.faults[key as keyof EngineFaults]
  }

  /** The environment that points the docker CLI (or akm-access) at this engine, and away from ~/.docker. */
  dockerEnv(): { DOCKER_HOST: string; DOCKER_CONFIG: string } {
    return { DOCKER_HOST: this.dockerHost, DOCKER_CONFIG: this.dockerConfigDir }
  }

  /**
   * Writes a Docker context, in the docker CLI's context store format: `contexts/meta/<sha256(name)>/meta.json` in
   * the config folder, and (by default) makes it the `currentContext` of that folder's config.json. Use it with
   * `DOCKER_CONFIG=configDir` and without DOCKER_HOST (which would override any context).
   */
  createContext(
    name: string,
    options: { description?: string; setCurrent?: boolean; host?: string; configDir?: string } = {},
  ): DockerContext {
    const configDir = options.configDir ?? this.dockerConfigDir
    const contextDir = join(configDir, 'contexts', 'meta', createHash('sha256').update(name).digest('hex'))
    mkdirSync(contextDir, { recursive: true })
    const meta = {
      Name: name,
      Metadata: { Description: options.description ?? '' },
      Endpoints: { docker: { Host: options.host ?? this.dockerHost, SkipTLSVerify: false } },
    }
    const metaPath = join(contextDir, 'meta.json')
    writeFileSync(metaPath, JSON.stringify(meta), { mode: 0o644 })
    if (options.setCurrent !== false) {
      const configPath = join(configDir, 'config.json')
      const config = existsSync(configPath) ? (JSON.parse(readFileSync(configPath, 'utf8')) as object) : {}
      writeFileSync(configPath, `${JSON.stringify({ ...config, currentContext: name }, null, '\t')}\n`, {
        mode: 0o600,
      })
    }
    return { name, configDir, metaPath }
  }

  readWorkFile(relativePath: string): Buffer {
    return readFileSync(join(this.workDir, relativePath))
  }

  // ---- the container's lifecycle ----

  /** Starts the container (new processes, same /work); a no-op if it runs. */
  async startContainer(): Promise<void> {
    const container = this.requireContainer()
    if (container.state.status === 'running') return
    // Written before the runtime starts: it hands /work to the pod user, so `akamas` can read the file (0600).
    this.currentPassword = this.resolvePassword()
    // The container's own address first; another one if something else holds its port 22 (a parallel sandbox).
    let attempt = 0
    const runtime = await createPodRuntime({
      name: container.config.hostname,
      workDir: this.workDir,
      stateDir: join(this.dir, 'containers', container.id.slice(0, 12)),
      hostKeyPath: this.hostKey.privateKeyPath,
      sshd: {
        password: this.currentPassword,
        authorizedKeys: [this.userKey.publicKey],
        passwordAuthentication: this.options.allowPassword ?? true,
      },
      sshListen: {
        port: 22,
        pickAddress: () => (attempt++ === 0 ? container.network.ipAddress : containerAddress()),
      },
    })
    container.network.ipAddress = runtime.sshAddress ?? container.network.ipAddress
    this.runtime = runtime
    container.runtime = runtime
    const pids = await runtime.processesInNamespace()
    container.state = {
      status: 'running',
      pid: pids.length > 0 ? Math.min(...pids) : 0,
      exitCode: 0,
      startedAt: new Date(),
      finishedAt: container.state.finishedAt,
    }
  }

  /**
   * Stops the container (`docker stop`): its processes die, exec sessions end (their exit code is 137, SIGKILL),
   * and the API shows it `exited` with `exitCode` (default 0).
   */
  async stopContainer(options: { exitCode?: number } = {}): Promise<void> {
    const container = this.requireContainer()
    if (container.state.status !== 'running') return
    const runtime = this.runtime
    // Marked first: exec requests made during the teardown get dockerd's "is not running".
    container.state = {
      ...container.state,
      status: 'exited',
      pid: 0,
      exitCode: options.exitCode ?? 0,
      finishedAt: new Date(),
    }
    container.runtime = undefined
    this.runtime = undefined
    await runtime?.destroy()
  }

  async restartContainer(): Promise<void> {
    await this.stopContainer()
    await this.startContainer()
  }

  /** Removes the container (`docker rm -f`): the API answers `No such container` until it is re-created. */
  async removeContainer(): Promise<void> {
    if (!this.current) return
    await this.stopContainer()
    this.engine.removeContainer(this.current.id)
    this.current = undefined
  }

  /**
   * Re-creates the container as `docker compose up` does after a change: a new id (hence a new hostname and a new
   * address), the same name and /work, started. The host key stays, as when the image keeps it in a volume; with
   * `newHostKey` it is a new one, as when the image generates its keys at start.
   */
  async recreateContainer(options: { newHostKey?: boolean } = {}): Promise<void> {
    await this.removeContainer()
    if (options.newHostKey) {
      const host = generateKeyPair(join(this.dir, 'keys'), `host-${randomHex(8)}`, 'ed25519')
      this.hostKey = { privateKeyPath: host.path, publicKey: host.publicKey }
    }
    this.createContainer()
    await this.startContainer()
  }

  /** Stops everything: the engine (connections, listeners, socket file), the container's processes, the files. */
  async stop(): Promise<void> {
    await this.engine.close()
    const runtime = this.runtime
    this.runtime = undefined
    if (this.current) this.current.runtime = undefined
    await runtime?.destroy()
    rmSync(this.dir, { recursive: true, force: true })
  }

  // ---- internals ----

  private requireContainer(): EngineContainer {
    if (!this.current) throw new Error(`no container ${this.containerName}: it was removed`)
    return this.current
  }

  /** CUSTOM_PASSWORD wins; otherwise the password kept in /work, or a new random one kept there. */
  private resolvePassword(): string {
    const file = join(this.workDir, 'akamas_password')
    const custom = this.options.customPassword
    let password: string
    if (custom !== undefined && custom !== '') password = custom
    else {
      const kept = existsSync(file) ? readFileSync(file, 'utf8').trim() : ''
      password = kept || randomBytes(12).toString('base64url')
    }
    writeFileSync(file, `${password}\n`, { mode: 0o600 })
    return password
  }

  private createContainer(): void {
    const id = randomHex(64)
    const configDir = '/opt/akamas'
    const labels: Record<string, string> = {
      'com.docker.compose.config-hash': randomHex(64),
      'com.docker.compose.container-number': '1',
      'com.docker.compose.depends_on': '',
      'com.docker.compose.image': this.imageId,
      'com.docker.compose.oneoff': 'False',
      'com.docker.compose.project': this.project,
      'com.docker.compose.project.config_files': `${configDir}/docker-compose.yml`,
      'com.docker.compose.project.working_dir': configDir,
      'com.docker.compose.service': this.service,
      'com.docker.compose.version': COMPOSE_VERSION,
    }
    const custom = this.options.customPassword
    const workDir = this.workDir
    this.current = {
      id,
      name: this.containerName,
      created: new Date(),
      image: this.options.image ?? DEFAULT_IMAGE,
      imageId: this.imageId,
      path: '/usr/sbin/sshd',
      args: ['-D', '-e'],
      config: {
        hostname: id.slice(0, 12),
        user: POD_USER_NAME,
        workingDir: POD_HOME,
        // compose's environment first, then the image's (Docker appends the image's variables that are not set).
        env: [
          `ALLOW_PASSWORD=${this.options.allowPassword ?? true}`,
          ...(custom !== undefined ? [`CUSTOM_PASSWORD=${custom}`] : []),
          `PATH=${POD_PATH}`,
        ],
        labels,
        exposedPorts: ['22/tcp'],
      },
      network: {
        name: this.networkName,
        networkId: this.networkId,
        endpointId: randomHex(64),
        ipAddress: containerAddress(),
        ipPrefixLen: 16,
        gateway: NETWORK_GATEWAY,
        macAddress: '02:42:ac:12:00:02',
        aliases: [...new Set([this.containerName, this.service])],
      },
      mounts: [{ type: 'bind', source: this.workDir, destination: POD_HOME, rw: true }],
      restartPolicy: 'unless-stopped',
      state: { status: 'created', pid: 0, exitCode: 0, startedAt: undefined, finishedAt: undefined },
      runtime: undefined,
      hostPath: (path) =>
        path === POD_HOME || path.startsWith(`${POD_HOME}/`) ? join(workDir, path.slice(POD_HOME.length)) : path,
    }
    this.engine.addContainer(this.current)
  }
}

/** The emulated compose network: 127.18.0.0/16 stands for Docker's 172.18.0.0/16 (see the top of this file). */
const NETWORK_GATEWAY = '127.18.0.1'

/** A random container address in the network (collisions with a parallel sandbox are retried at sshd's bind). */
function containerAddress(): string {
  const [high = 0, low = 0] = randomBytes(2)
  return `127.18.${1 + (high % 254)}.${2 + (low % 253)}`
}

function randomHex(digits: number): string {
  return randomBytes(Math.ceil(digits / 2))
    .toString('hex')
    .slice(0, digits)
}
