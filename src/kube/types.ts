/**
 * The data that flows through the Kubernetes transport layer: what the process environment looks like (injected, so
 * tests never touch the real HOME or /var/run/secrets), and the fully resolved connection (cluster, user, context,
 * namespace) that `kubeconfig.ts` produces and `client.ts` / `websocket.ts` consume. Plain data only: no I/O here.
 */

/** Environment variables, as `process.env` (only read, never written). */
export type Env = Readonly<Record<string, string | undefined>>

/** Reads a file; throws a Node-style error (with `code`, e.g. ENOENT) when it cannot. */
export type ReadFile = (path: string) => Buffer

/**
 * The parts of the process the connection depends on, so that tests (and the `doctor` command) can point them
 * elsewhere. `defaultKubeEnvironment()` in kubeconfig.ts builds the real one.
 */
export interface KubeEnvironment {
  /** KUBECONFIG, AKM_NAMESPACE, KUBERNETES_SERVICE_HOST/PORT, POD_NAMESPACE. */
  readonly env: Env
  /** For ~/.kube/config; undefined when the home directory is unknown. */
  readonly homeDir: string | undefined
  /** Base for a relative --kubeconfig or KUBECONFIG entry. */
  readonly cwd: string
  /** Where the in-cluster service account files live (token, ca.crt, namespace). */
  readonly serviceAccountDir: string
  /** Defaults to `fs.readFileSync`. */
  readonly readFile?: ReadFile
  /** Milliseconds since the epoch; for token expiry checks. Defaults to `Date.now`. */
  readonly now?: () => number
}

/** Where a value came from, for `doctor` and for error messages. */
export type ValueSource = 'flag' | 'env' | 'kubeconfig' | 'in-cluster' | 'default'

/** A value with its provenance, e.g. `{ value: 'akamas', source: 'default', from: 'default' }`. */
export interface Sourced<T> {
  readonly value: T
  readonly source: ValueSource
  /**
   * Human-readable origin, ready to print after the value: `--context`, `current-context in ~/.kube/config`,
   * `AKM_NAMESPACE`, `context "prod" in /etc/kube/a.yaml`, `default`.
   */
  readonly from: string
}

export type ConfigOrigin =
  | {
      readonly kind: 'kubeconfig'
      /** The files that were read, in merge order (missing KUBECONFIG entries are left out). */
      readonly files: readonly string[]
      /** How the file list was chosen. */
      readonly source: 'flag' | 'env' | 'default'
      /** `--kubeconfig`, `KUBECONFIG` or `~/.kube/config`. */
      readonly from: string
    }
  | { readonly kind: 'in-cluster'; readonly serviceAccountDir: string }

export interface ClusterConfig {
  /** The cluster's name in the kubeconfig (`in-cluster` otherwise). */
  readonly name: string
  /** The API server URL, e.g. `https://1.2.3.4:6443` or `https://rancher.example.com/k8s/clusters/c-x`. */
  readonly server: string
  /** PEM text of the CA bundle to trust instead of the system roots (from -data or the file). */
  readonly certificateAuthorityData: string | undefined
  /** The CA file the bundle was read from, for messages. */
  readonly certificateAuthorityFile: string | undefined
  readonly insecureSkipTlsVerify: boolean
  /** Server name for SNI and certificate verification, when it differs from the host in `server`. */
  readonly tlsServerName: string | undefined
  /** `proxy-url` from the kubeconfig; it wins over HTTPS_PROXY and NO_PROXY. */
  readonly proxyUrl: string | undefined
  readonly disableCompression: boolean
  /** `extensions[client.authentication.k8s.io/exec]`, handed to exec plugins with provideClusterInfo. */
  readonly execExtension: unknown
  /** The kubeconfig file that defined it; undefined in-cluster. */
  readonly definedIn: string | undefined
}

export type ExecInteractiveMode = 'Never' | 'IfAvailable' | 'Always'

/** A client-go credential plugin (`users[].user.exec`), with its command already resolved. */
export interface ExecConfig {
  /** As written, or resolved against the kubeconfig's directory when it is a relative path with a slash. */
  readonly command: string
  readonly args: readonly string[]
  readonly env: readonly { readonly name: string; readonly value: string }[]
  /** `client.authentication.k8s.io/v1` or `/v1beta1`. */
  readonly apiVersion: string
  readonly installHint: string | undefined
  readonly provideClusterInfo: boolean
  readonly interactiveMode: ExecInteractiveMode
}

export interface Impersonation {
  readonly user: string | undefined
  readonly uid: string | undefined
  readonly groups: readonly string[]
  readonly extra: Readonly<Record<string, readonly string[]>>
}

/**
 * A kubeconfig user with every file already read. Static credentials (token, basic, client certificate) win over an
 * exec plugin, as in client-go. Every secret here has been passed to `registerSecret`.
 */
export interface UserConfig {
  /** The user's name in the kubeconfig; `` for a context without a user; `in-cluster` for the service account. */
  readonly name: string
  readonly definedIn: string | undefined
  readonly token: string | undefined
  /** Where the token came from, for messages: `token`, `tokenFile /path`, `auth-provider oidc`, `service account`. */
  readonly tokenSource: string | undefined
  readonly username: string | undefined
  readonly password: string | undefined
  /** PEM text. */
  readonly clientCertificateData: string | undefined
  /** PEM text. */
  readonly clientKeyData: string | undefined
  readonly exec: ExecConfig | undefined
  readonly impersonate: Impersonation | undefined
}

/** Everything needed to talk to the API server, as kubectl would with the same flags and environment. */
export interface KubeConnection {
  readonly origin: ConfigOrigin
  /** The context in use; undefined in-cluster. */
  readonly context: Sourced<string> | undefined
  readonly namespace: Sourced<string>
  readonly cluster: ClusterConfig
  readonly user: UserConfig
  /** Names of every context in the merged kubeconfig (for `doctor` and error hints). */
  readonly contexts: readonly string[]
}

/** How the user authenticates, for messages and `doctor`. */
export type AuthKind = 'token' | 'basic' | 'client-certificate' | 'exec' | 'none'

export function authKind(user: UserConfig): AuthKind {
  if (user.token !== undefined) return 'token'
  if (user.username !== undefined || user.password !== undefined) return 'basic'
  if (user.clientCertificateData !== undefined) return 'client-certificate'
  if (user.exec !== undefined) return 'exec'
  return 'none'
}

/** Query parameters: arrays repeat the key (`command=sh&command=-c`); undefined values are left out. */
export type QueryParams = Readonly<Record<string, string | number | boolean | readonly string[] | undefined>>
