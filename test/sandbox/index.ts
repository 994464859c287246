/**
 * The sandbox: a local Kubernetes API server for the Akamas management pod, backed by real processes and a real
 * OpenSSH sshd, with a scenario API that tests use to shape the cluster (pods, Secrets, RBAC, faults) while it runs.
 *
 *   const sandbox = await Sandbox.start()
 *   sandbox.kubeconfigPath    // a kubeconfig for kubectl and akm-access
 *   await sandbox.rollout()   // replace the management pod, as a Deployment rollout does
 *   sandbox.deny({ verb: 'get', resource: 'secrets' })
 *   await sandbox.stop()
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type ApiFaults, ApiServer, type ClusterState, type PodEntry } from './api-server.js'
import { createPki, type SandboxPki } from './certs.js'
import type { PodRuntime, StreamFaults } from './contracts.js'
import type { ExecProtocolSupport } from './exec.js'
import { generateKeyPair } from './keys.js'
import { createPodRuntime } from './pod-runtime.js'
import { Authorizer, type DenyRule } from './rbac.js'
import { type Json, nextResourceVersion, podObject, secretObject, serviceObject } from './resources.js'

/** The Secret's shapes that the management pod's credentials come in. */
export type CredentialsVariant =
  /** `password` only (password login). */
  | 'password'
  /** `ssh-privatekey` only, type kubernetes.io/ssh-auth (key-only installs). */
  | 'key'
  /** `password`, `id_rsa` and `id_rsa.pub`. */
  | 'both'
  /** Keys present but their content is not a usable password or key. */
  | 'malformed'

export interface ManagementPodOptions {
  /** Defaults to `<deployment>-<replicaset hash>-<suffix>`. */
  name?: string
  /** The ReplicaSet hash; defaults to the current rollout's. */
  replicaSetHash?: string
  phase?: 'Pending' | 'Running' | 'Succeeded' | 'Failed'
  ready?: boolean
  waitingReason?: string
  waitingMessage?: string
  restartCount?: number
  lastTerminationReason?: string
  /** When the container last terminated (default: now), shown by RESTARTS as "(5m ago)". */
  lastTerminationAt?: Date
  terminating?: boolean
  createdAt?: Date
  /** Container names; the first is the management container. */
  containers?: string[]
  labels?: Record<string, string>
  namespace?: string
  /** The Deployment that owns the pod (default management-pod); pods of two Deployments are two workloads. */
  deployment?: string
  /** The management container's env and envFrom instead of the chart's (how the pod references its Secret). */
  env?: Json[]
  envFrom?: Json[]
  /** Volumes added to the pod's `work` volume (e.g. a Secret volume). */
  volumes?: Json[]
  /** More ports the pod listens on: pod port -> a loopback port on the host that stands for it (e.g. a server). */
  extraPorts?: Record<number, number>
}

export interface SandboxOptions {
  /** Parent folder for the sandbox's files (default: the OS temp dir). */
  root?: string
  namespace?: string
  /** What /version reports (default v1.32.4): the kubectl dispatcher picks its kubectl by it. */
  serverVersion?: string
  credentials?: CredentialsVariant
  /** sshd's PasswordAuthentication (default: true unless credentials is 'key'). */
  passwordAuthentication?: boolean
  execProtocols?: ExecProtocolSupport
  /** Start one ready management pod (default true). */
  managementPod?: boolean
  /** Create the `management-pod` Service (default true). */
  service?: boolean
}

export interface KubeconfigOptions {
  auth?: 'token' | 'client-certificate' | 'exec' | 'basic' | 'none'
  /** The context's namespace; null leaves it out. Default: the sandbox namespace. */
  namespace?: string | null
  proxyUrl?: string
  /** Server URL override (e.g. through a latency proxy). */
  server?: string
  /** Leave out the CA (to test TLS verification failures). */
  withoutCa?: boolean
  insecureSkipTlsVerify?: boolean
  token?: string
  contextName?: string
  path?: string
}

export const managementLabels = { app: 'management-pod', 'app.kubernetes.io/name': 'management-pod' }
export const sandboxUser = 'sandbox-admin'

const hashAlphabet = 'bcdfghjklmnpqrstvwxz2456789'
function randomName(length: number): string {
  return [...randomBytes(length)].map((byte) => hashAlphabet[byte % hashAlphabet.length]).join('')
}

export class Sandbox {
  readonly namespace: string
  readonly token = randomBytes(24).toString('base64url')
  readonly password = `Akm-${randomBytes(9).toString('base64url')}`
  readonly basicUser = { name: 'basic-user', password: randomBytes(12).toString('base64url') }
  readonly workDir: string
  readonly kubeconfigPath: string
  readonly authorizer = new Authorizer()
  readonly apiFaults: ApiFaults = {}
  readonly streamFaults: StreamFaults = {}
  /** The user key pair whose private half the Secret holds. */
  readonly userKey: { privateKey: string; publicKey: string; path: string }
  /** The sshd host key (OpenSSH public key line) of pods started from now on. */
  hostKey: { privateKeyPath: string; publicKey: string }
  private replicaSetHash = randomName(10)
  private readonly tokens = new Map<string, string>()
  private readonly state: ClusterState = {
    namespaces: new Set(),
    pods: new Map(),
    secrets: new Map(),
    services: new Map(),
    deployments: new Map(),
  }
  private credentials: CredentialsVariant
  private passwordAuthentication: boolean
  private server!: ApiServer
  private port = 0

  private constructor(
    readonly dir: string,
    readonly pki: SandboxPki,
    private readonly options: SandboxOptions,
  ) {
    this.namespace = options.namespace ?? 'akamas'
    this.workDir = join(dir, 'work')
    mkdirSync(this.workDir, { recursive: true })
    this.kubeconfigPath = join(dir, 'kubeconfig')
    this.credentials = options.credentials ?? 'both'
    this.passwordAuthentication = options.passwordAuthentication ?? this.credentials !== 'key'
    this.userKey = generateKeyPair(join(dir, 'keys'), 'user', 'ed25519')
    const host = generateKeyPair(join(dir, 'keys'), 'host', 'ed25519')
    this.hostKey = { privateKeyPath: host.path, publicKey: host.publicKey }
    this.tokens.set(this.token, sandboxUser)
  }

  static async start(options: SandboxOptions = {}): Promise<Sandbox> {
    const root = resolve(options.root ?? tmpdir())
    // The pods see their own /work: files of the sandbox under the host's /work would be hidden from them.
    if (root === '/work' || root.startsWith('/work/')) {
      throw new Error(`the sandbox's folder must not be under /work (got ${root}): the pod mounts its /work there`)
    }
    mkdirSync(root, { recursive: true })
    const dir = mkdtempSync(join(root, 'akm-sandbox-'))
    mkdirSync(join(dir, 'pki'))
    const sandbox = new Sandbox(dir, createPki(join(dir, 'pki')), options)
    try {
      await sandbox.boot()
    } catch (error) {
      await sandbox.stop()
      throw error
    }
    return sandbox
  }

  private async boot(): Promise<void> {
    for (const namespace of ['default', 'kube-system', this.namespace]) this.state.namespaces.add(namespace)
    this.server = new ApiServer({
      cert: this.pki.serverCert,
      key: this.pki.serverKey,
      clientCa: this.pki.caCert,
      gitVersion: this.options.serverVersion ?? 'v1.32.4',
      tokens: this.tokens,
      basicUsers: new Map([[this.basicUser.name, this.basicUser.password]]),
      state: this.state,
      authorizer: this.authorizer,
      apiFaults: this.apiFaults,
      streamFaults: this.streamFaults,
      execProtocols: this.options.execProtocols ?? 'v5',
    })
    this.port = await this.server.listen()
    this.writeDeployment()
    this.setCredentials(this.credentials)
    if (this.options.service !== false) this.setService()
    if (this.options.managementPod !== false) await this.addPod()
    this.writeKubeconfig({ path: this.kubeconfigPath })
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`
  }

  get requests() {
    return this.server.requests
  }

  // ---- kubeconfigs ----

  /** Writes a kubeconfig for this sandbox (mode 0600) and returns its path. */
  writeKubeconfig(options: KubeconfigOptions = {}): string {
    const auth = options.auth ?? 'token'
    const path = options.path ?? join(this.dir, `kubeconfig-${auth}-${randomName(5)}`)
    const contextName = options.contextName ?? 'sandbox'
    const namespace = options.namespace === undefined ? this.namespace : options.namespace
    const cluster: Json = { server: options.server ?? this.url }
    if (options.insecureSkipTlsVerify) cluster['insecure-skip-tls-verify'] = true
    else if (!options.withoutCa) cluster['certificate-authority-data'] = base64(this.pki.caCert)
    if (options.proxyUrl) cluster['proxy-url'] = options.proxyUrl
    const user: Json = {}
    if (auth === 'token') user.token = options.token ?? this.token
    if (auth === 'basic') Object.assign(user, { username: this.basicUser.name, password: this.basicUser.password })
    if (auth === 'client-certificate') {
      user['client-certificate-data'] = base64(this.pki.clientCert)
      user['client-key-data'] = base64(this.pki.clientKey)
    }
    if (auth === 'exec') user.exec = this.execPlugin()
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      preferences: {},
      'current-context': contextName,
      clusters: [{ name: contextName, cluster }],
      users: [{ name: `${contextName}-user`, user }],
      contexts: [
        {
          name: contextName,
          context: { cluster: contextName, user: `${contextName}-user`, ...(namespace ? { namespace } : {}) },
        },
      ],
    }
    writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 })
    return path
  }

  /** An exec credential plugin (a script in the sandbox dir) that prints an ExecCredential for a token of its own. */
  private execPlugin(): Json {
    const token = `exec-${randomBytes(16).toString('hex')}`
    this.tokens.set(token, 'exec-user')
    const tokenFile = join(this.dir, 'exec-plugin.token')
    writeFileSync(tokenFile, token, { mode: 0o600 })
    const script = join(this.dir, 'exec-plugin.sh')
    writeFileSync(
      script,
      [
        '#!/bin/sh',
        '# A stand-in for aws eks get-token / gke-gcloud-auth-plugin: a message on stderr, the credential on stdout.',
        'echo "sandbox-exec-plugin: issuing a token" >&2',
        `printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}\\n' "$(cat '${tokenFile}')"`,
        '',
      ].join('\n'),
    )
    chmodSync(script, 0o755)
    return { apiVersion: 'client.authentication.k8s.io/v1', command: script, interactiveMode: 'IfAvailable' }
  }

  // ---- the management pod ----

  private podKey(name: string, namespace = this.namespace): string {
    return `${namespace}/${name}`
  }

  managementPods(namespace = this.namespace): PodEntry[] {
    return [...this.state.pods.entries()].filter(([key]) => key.startsWith(`${namespace}/`)).map(([, entry]) => entry)
  }

  podNames(namespace = this.namespace): string[] {
    return this.managementPods(namespace).map((entry) => (entry.object.metadata as { name: string }).name)
  }

  runtime(podName: string): PodRuntime {
    const runtime = this.state.pods.get(this.podKey(podName))?.runtime
    if (!runtime) throw new Error(`pod ${podName} has no running processes`)
    return runtime
  }

  /** The pod that `akm-access` should pick: the newest ready one. */
  get currentPodName(): string {
    const ready = this.managementPods()
      .map(
        (entry) =>
          entry.object as {
            metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string }
            status: { conditions: { type: string; status: string }[] }
          },
      )
      .filter(
        (pod) =>
          !pod.metadata.deletionTimestamp &&
          pod.status.conditions.some((c) => c.type === 'Ready' && c.status === 'True'),
      )
      .sort((a, b) => Date.parse(b.metadata.creationTimestamp) - Date.parse(a.metadata.creationTimestamp))
    const name = ready[0]?.metadata.name
    if (!name) throw new Error('no ready management pod in the sandbox')
    return name
  }

  async addPod(options: ManagementPodOptions = {}): Promise<string> {
    const namespace = options.namespace ?? this.namespace
    const hash = options.replicaSetHash ?? this.replicaSetHash
    const name = options.name ?? `${options.deployment ?? 'management-pod'}-${hash}-${randomName(5)}`
    const phase = options.phase ?? 'Running'
    const ready = options.ready ?? phase === 'Running'
    const object = podObject({
      name,
      namespace,
      labels: { ...(options.labels ?? managementLabels), 'pod-template-hash': hash },
      ownerReplicaSet: `${options.deployment ?? 'management-pod'}-${hash}`,
      containers: (options.containers ?? ['management-pod']).map((container, index) =>
        index === 0
          ? {
              name: container,
              ...this.managementContainerSpec(),
              ...(options.env ? { env: options.env } : {}),
              ...(options.envFrom ? { envFrom: options.envFrom } : {}),
            }
          : { name: container },
      ),
      volumes: [
        { name: 'work', persistentVolumeClaim: { claimName: 'management-pod-work' } },
        ...(options.volumes ?? []),
      ],
      createdAt: options.createdAt ?? new Date(),
      phase,
      ready,
      ...(options.waitingReason ? { waitingReason: options.waitingReason } : {}),
      ...(options.waitingMessage ? { waitingMessage: options.waitingMessage } : {}),
      ...(options.restartCount !== undefined ? { restartCount: options.restartCount } : {}),
      ...(options.lastTerminationReason ? { lastTerminationReason: options.lastTerminationReason } : {}),
      ...(options.lastTerminationAt ? { lastTerminationAt: options.lastTerminationAt } : {}),
      ...(options.terminating ? { deletionTimestamp: new Date() } : {}),
    })
    let runtime: PodRuntime | undefined
    if (phase === 'Running') {
      const stateDir = join(this.dir, 'pods', name)
      mkdirSync(stateDir, { recursive: true })
      runtime = await createPodRuntime({
        name,
        workDir: this.workDir,
        stateDir,
        hostKeyPath: this.hostKey.privateKeyPath,
        sshd: this.sshdAuth(),
        ...(options.extraPorts ? { extraPorts: options.extraPorts } : {}),
      })
    }
    this.state.pods.set(this.podKey(name, namespace), { object, runtime })
    this.server.notify('pods', 'ADDED', object)
    return name
  }

  private managementContainerSpec(): Json {
    return {
      env: [
        { name: 'ALLOW_PASSWORD', value: String(this.passwordAuthentication) },
        ...(this.secretHasPassword()
          ? [{ name: 'CUSTOM_PASSWORD', valueFrom: { secretKeyRef: { name: 'management-pod', key: 'password' } } }]
          : []),
      ],
      volumeMounts: [{ name: 'work', mountPath: '/work' }],
      ports: [{ name: 'ssh', containerPort: 22, protocol: 'TCP' }],
    }
  }

  private sshdAuth() {
    return {
      ...(this.secretHasPassword() ? { password: this.password } : {}),
      authorizedKeys: [this.userKey.publicKey],
      passwordAuthentication: this.passwordAuthentication,
    }
  }

  private secretHasPassword(): boolean {
    return this.credentials === 'password' || this.credentials === 'both'
  }

  /** Deletes a pod: its processes die and its streams are cut, as when a node drains it. */
  async deletePod(name: string, namespace = this.namespace): Promise<void> {
    const key = this.podKey(name, namespace)
    const entry = this.state.pods.get(key)
    if (!entry) return
    this.state.pods.delete(key)
    this.server.notify('pods', 'DELETED', entry.object)
    this.server.dropStreams(name)
    await entry.runtime?.destroy()
  }

  /** Marks a pod as terminating (kubectl shows `Terminating`); it keeps running until deleted. */
  markTerminating(name: string, namespace = this.namespace): void {
    const entry = this.state.pods.get(this.podKey(name, namespace))
    if (!entry) return
    Object.assign(entry.object.metadata as Json, {
      deletionTimestamp: new Date().toISOString(),
      deletionGracePeriodSeconds: 30,
    })
    this.server.notify('pods', 'MODIFIED', entry.object)
  }

  /**
   * A Deployment rollout: a new ReplicaSet, a new ready pod with a new name, then the old pods are deleted (their
   * sessions cut). `/work` persists; the host key too, unless `newHostKey`.
   */
  async rollout(options: { newHostKey?: boolean } = {}): Promise<{ oldPods: string[]; newPod: string }> {
    const oldPods = this.podNames()
    if (options.newHostKey) {
      const host = generateKeyPair(join(this.dir, 'keys'), `host-${randomName(4)}`, 'ed25519')
      this.hostKey = { privateKeyPath: host.path, publicKey: host.publicKey }
    }
    this.replicaSetHash = randomName(10)
    this.writeDeployment()
    const newPod = await this.addPod()
    for (const name of oldPods) await this.deletePod(name)
    return { oldPods, newPod }
  }

  async stopSshd(podName = this.currentPodName): Promise<void> {
    await this.runtime(podName).stopSshd()
  }

  async startSshd(podName = this.currentPodName): Promise<void> {
    await this.runtime(podName).startSshd()
  }

  /** The management-pod Deployment; a rollout bumps its generation. Its status is computed from the pods on read. */
  private writeDeployment(): void {
    const key = this.podKey('management-pod')
    const previous = this.state.deployments.get(key)?.metadata as
      | { uid: string; creationTimestamp: string; generation: number }
      | undefined
    const deployment: Json = {
      kind: 'Deployment',
      apiVersion: 'apps/v1',
      metadata: {
        name: 'management-pod',
        namespace: this.namespace,
        uid: previous?.uid ?? randomUUID(),
        resourceVersion: nextResourceVersion(),
        generation: (previous?.generation ?? 0) + 1,
        creationTimestamp: previous?.creationTimestamp ?? new Date().toISOString(),
        labels: managementLabels,
        annotations: { 'deployment.kubernetes.io/revision': String((previous?.generation ?? 0) + 1) },
      },
      spec: {
        replicas: 1,
        selector: { matchLabels: managementLabels },
        // rollout() starts the new pod before it deletes the old one, as a rolling update does.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
        template: {
          metadata: { labels: managementLabels },
          spec: {
            containers: [{ name: 'management-pod', image: 'akamas/management-container:sandbox' }],
          },
        },
      },
      status: {},
    }
    this.state.deployments.set(key, deployment)
    this.server.notify('deployments', previous ? 'MODIFIED' : 'ADDED', deployment)
  }

  // ---- Secret, Service ----

  /**
   * Sets the credentials Secret to one of its variants. Pods started afterwards get matching sshd settings;
   * running pods keep theirs (as a real pod keeps the config it started with).
   */
  setCredentials(variant: CredentialsVariant): void {
    this.credentials = variant
    const name = 'management-pod'
    const key = this.userKey.privateKey
    const secrets: Record<CredentialsVariant, Json> = {
      password: secretObject(this.namespace, name, 'Opaque', { password: this.password }),
      key: secretObject(this.namespace, name, 'kubernetes.io/ssh-auth', { 'ssh-privatekey': key }),
      both: secretObject(this.namespace, name, 'Opaque', {
        password: this.password,
        id_rsa: key,
        'id_rsa.pub': this.userKey.publicKey,
      }),
      malformed: secretObject(this.namespace, name, 'Opaque', {
        password: '',
        id_rsa: '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n',
      }),
    }
    this.putSecret(secrets[variant])
    writeFileSync(join(this.workDir, 'akamas_password'), this.secretHasPassword() ? `${this.password}\n` : '', {
      mode: 0o600,
    })
  }

  /** Puts an arbitrary Secret (values given as plain strings; `rawData` values are stored as-is, already base64). */
  setSecret(
    name: string,
    data: Record<string, string>,
    options: { type?: string; rawData?: Record<string, string> } = {},
  ): void {
    const object = secretObject(this.namespace, name, options.type ?? 'Opaque', data)
    if (options.rawData) Object.assign(object.data as Json, options.rawData)
    this.putSecret(object)
  }

  private putSecret(object: Json): void {
    const key = this.podKey((object.metadata as { name: string }).name)
    const existed = this.state.secrets.has(key)
    this.state.secrets.set(key, object)
    this.server.notify('secrets', existed ? 'MODIFIED' : 'ADDED', object)
  }

  deleteSecret(name = 'management-pod'): void {
    const key = this.podKey(name)
    const object = this.state.secrets.get(key)
    if (!object) return
    this.state.secrets.delete(key)
    this.server.notify('secrets', 'DELETED', object)
  }

  setService(options: { selector?: Record<string, string>; port?: number } = {}): void {
    const key = this.podKey('management-pod')
    const existed = this.state.services.has(key)
    const object = serviceObject(this.namespace, 'management-pod', options.selector ?? managementLabels, [
      { name: 'ssh', port: options.port ?? 22, targetPort: 22, protocol: 'TCP' },
    ])
    this.state.services.set(key, object)
    this.server.notify('services', existed ? 'MODIFIED' : 'ADDED', object)
  }

  deleteService(): void {
    const key = this.podKey('management-pod')
    const object = this.state.services.get(key)
    if (!object) return
    this.state.services.delete(key)
    this.server.notify('services', 'DELETED', object)
  }

  /** Deletes a namespace and, as the namespace controller does, everything in it. */
  async deleteNamespace(name: string): Promise<void> {
    this.state.namespaces.delete(name)
    for (const podName of this.podNames(name)) await this.deletePod(podName, name)
    for (const store of [this.state.secrets, this.state.services, this.state.deployments]) {
      for (const key of [...store.keys()]) if (key.startsWith(`${name}/`)) store.delete(key)
    }
  }

  // ---- RBAC ----

  deny(rule: DenyRule): void {
    this.authorizer.deny(rule)
  }

  allowAll(): void {
    this.authorizer.reset()
  }

  /** Resets faults injected by a test. */
  clearFaults(): void {
    for (const key of Object.keys(this.apiFaults)) delete this.apiFaults[key as keyof ApiFaults]
    for (const key of Object.keys(this.streamFaults)) delete this.streamFaults[key as keyof StreamFaults]
  }

  streamCount(podName?: string): number {
    return this.server.streamCount(podName)
  }

  readWorkFile(relativePath: string): Buffer {
    return readFileSync(join(this.workDir, relativePath))
  }

  async stop(): Promise<void> {
    await this.server?.close()
    for (const entry of this.state.pods.values()) await entry.runtime?.destroy()
    this.state.pods.clear()
    rmSync(this.dir, { recursive: true, force: true })
  }
}

function base64(text: string): string {
  return Buffer.from(text).toString('base64')
}
