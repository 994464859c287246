/**
 * Resolves the connection to the API server exactly as kubectl would: --kubeconfig, else KUBECONFIG (several files
 * merged with client-go's rules), else ~/.kube/config, else the in-cluster service account. We do not use
 * @kubernetes/client-node's KubeConfig because it merges KUBECONFIG differently from kubectl (throws on a missing file
 * or a duplicate name, takes the last current-context) and silently falls back to http://localhost:8080 when nothing
 * is configured. Every file the kubeconfig points to (CA, client certificate, key, token file) is read here, so the
 * client gets plain data and config errors surface before any network traffic.
 */
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import path from 'node:path'
import { AccessError, ExitCode } from '../errors.js'
import { registerSecret } from '../redact.js'
import type {
  ClusterConfig,
  ConfigOrigin,
  ExecConfig,
  ExecInteractiveMode,
  Impersonation,
  KubeConnection,
  KubeEnvironment,
  ReadFile,
  Sourced,
  UserConfig,
} from './types.js'
import { parseYamlLite } from './yaml-lite.js'

/** The namespace of an Akamas installation when nothing else says otherwise. */
export const DEFAULT_NAMESPACE = 'akamas'

export const DEFAULT_SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'

const EXEC_API_VERSIONS = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1']

/** The kubectl-style flags that select the connection (undefined or '' = not given). */
export interface ConnectionFlags {
  readonly kubeconfig?: string | undefined
  readonly context?: string | undefined
  readonly namespace?: string | undefined
}

/** The real environment of this process. */
export function defaultKubeEnvironment(env: NodeJS.ProcessEnv = process.env): KubeEnvironment {
  let home: string | undefined
  try {
    home = homedir() || undefined
  } catch {
    home = env.HOME || undefined
  }
  return { env, homeDir: home, cwd: process.cwd(), serviceAccountDir: DEFAULT_SERVICE_ACCOUNT_DIR }
}

/** `/home/me/.kube/config` → `~/.kube/config`, for messages. */
export function displayPath(file: string, homeDir: string | undefined): string {
  const home = homeDir?.replace(/[/\\]+$/, '')
  // A home of "/" (some containers) would turn every path into ~/…: leave those alone.
  if (home && (file === home || file.startsWith(home + path.sep))) return `~${file.slice(home.length)}`
  return file
}

/**
 * Finds the kubeconfig (or the in-cluster service account), applies --context and the namespace precedence (flag,
 * AKM_NAMESPACE, the context's namespace, `akamas`), and reads every referenced file. Throws AccessError (exit
 * `config`) for anything wrong with the configuration; never falls back to http://localhost:8080.
 */
export async function resolveConnection(flags: ConnectionFlags, environment: KubeEnvironment): Promise<KubeConnection> {
  const readFile: ReadFile = environment.readFile ?? ((file) => readFileSync(file))
  const show = (file: string) => displayPath(file, environment.homeDir)
  const { env } = environment

  let files: string[]
  let source: 'flag' | 'env' | 'default'
  let from: string
  const explicit = nonEmpty(flags.kubeconfig)
  const kubeconfigEnv = nonEmpty(env.KUBECONFIG)
  const loaded: LoadedFile[] = []
  if (explicit !== undefined) {
    source = 'flag'
    from = '--kubeconfig'
    files = [path.resolve(environment.cwd, explicit)]
    const text = readConfigFile(readFile, files[0]!, show)
    if (text === undefined) {
      throw configError(`the kubeconfig file ${show(files[0]!)} (from --kubeconfig) does not exist`, {
        hint: 'check the path given to --kubeconfig',
      })
    }
    loaded.push(await parseKubeconfig(text, files[0]!, show))
  } else if (kubeconfigEnv !== undefined) {
    source = 'env'
    from = 'KUBECONFIG'
    const listed = [
      ...new Set(
        kubeconfigEnv
          .split(path.delimiter)
          .filter((entry) => entry.trim() !== '')
          .map((entry) => path.resolve(environment.cwd, entry)),
      ),
    ]
    for (const file of listed) {
      const text = readConfigFile(readFile, file, show)
      if (text !== undefined) loaded.push(await parseKubeconfig(text, file, show))
    }
    if (loaded.length === 0) {
      throw configError(
        `no kubeconfig found: none of the files in KUBECONFIG exist (${listed.map(show).join(', ') || 'empty'})`,
        { hint: 'fix KUBECONFIG, or unset it to use ~/.kube/config' },
      )
    }
    files = loaded.map((file) => file.file)
  } else {
    source = 'default'
    from = '~/.kube/config'
    const file = environment.homeDir ? path.join(environment.homeDir, '.kube', 'config') : undefined
    const text = file === undefined ? undefined : readConfigFile(readFile, file, show)
    if (file === undefined || text === undefined) {
      const inCluster = inClusterConnection(flags, environment, readFile)
      if (inCluster) return inCluster
      throw new NoKubernetesConfiguration(
        `no kubeconfig found: ${file === undefined ? 'the home directory is unknown' : `${show(file)} does not exist`}, KUBECONFIG is not set and this is not a pod in a cluster`,
        'get a kubeconfig for your cluster (e.g. `aws eks update-kubeconfig --name <cluster>`, ' +
          '`gcloud container clusters get-credentials <cluster>`, `az aks get-credentials -n <cluster> -g <group>`), ' +
          'or pass --kubeconfig <file>',
      )
    }
    loaded.push(await parseKubeconfig(text, file, show))
    files = [file]
  }

  const merged = mergeKubeconfigs(loaded)
  const origin: ConfigOrigin = { kind: 'kubeconfig', files, source, from }
  const contextNames = [...merged.contexts.keys()]
  const where = files.length === 1 ? show(files[0]!) : `the kubeconfig files (${files.map(show).join(', ')})`
  const available = contextNames.length ? `available contexts: ${contextNames.join(', ')}` : 'it defines no contexts'

  let context: Sourced<string>
  const contextFlag = nonEmpty(flags.context)
  if (contextFlag !== undefined) {
    context = { value: contextFlag, source: 'flag', from: '--context' }
  } else if (merged.currentContext) {
    context = {
      value: merged.currentContext.name,
      source: 'kubeconfig',
      from: `current-context in ${show(merged.currentContext.file)}`,
    }
  } else {
    throw configError(`no current context is set in ${where}`, {
      hint: contextNames.length
        ? `pass --context <name>, or run \`kubectl config use-context <name>\` (${available})`
        : 'the kubeconfig defines no contexts: get a kubeconfig for your cluster from its provider',
    })
  }

  const contextEntry = merged.contexts.get(context.value)
  if (!contextEntry) {
    throw configError(`context "${context.value}" (from ${context.from}) not found in ${where}`, {
      hint: contextNames.length ? `${available} (see \`kubectl config get-contexts\`)` : `${available}`,
    })
  }
  const contextWhere = `context "${context.value}" in ${show(contextEntry.file)}`
  const clusterName = optionalString(contextEntry.body, 'cluster', contextWhere)
  if (!clusterName) throw configError(`${contextWhere} names no cluster`, { hint: 'fix the context in the kubeconfig' })
  const clusterEntry = merged.clusters.get(clusterName)
  if (!clusterEntry) {
    throw configError(`${contextWhere} refers to cluster "${clusterName}", which is not defined in ${where}`, {
      hint: 'fix the kubeconfig, or get a fresh one for your cluster',
    })
  }
  const userName = optionalString(contextEntry.body, 'user', contextWhere) ?? ''
  const userEntry = userName === '' ? undefined : merged.users.get(userName)
  if (userName !== '' && !userEntry) {
    throw configError(`${contextWhere} refers to user "${userName}", which is not defined in ${where}`, {
      hint: 'fix the kubeconfig, or get a fresh one for your cluster',
    })
  }

  const contextNamespace = nonEmpty(optionalString(contextEntry.body, 'namespace', contextWhere))
  const namespace = pickNamespace(flags, environment, contextNamespace, contextWhere)
  const cluster = buildCluster(clusterEntry, readFile, show)
  const user = userEntry ? buildUser(userEntry, readFile, show, environment.now ?? Date.now) : emptyUser('', undefined)
  return { origin, context, namespace, cluster, user, contexts: contextNames }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading and merging

interface Entry {
  readonly name: string
  readonly body: Record<string, unknown>
  readonly file: string
}

interface LoadedFile {
  readonly file: string
  readonly clusters: readonly Entry[]
  readonly users: readonly Entry[]
  readonly contexts: readonly Entry[]
  readonly currentContext: string | undefined
}

interface MergedKubeconfig {
  readonly clusters: Map<string, Entry>
  readonly users: Map<string, Entry>
  readonly contexts: Map<string, Entry>
  readonly currentContext: { readonly name: string; readonly file: string } | undefined
}

function readConfigFile(readFile: ReadFile, file: string, show: (f: string) => string): string | undefined {
  try {
    return readFile(file).toString('utf8')
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR') return undefined
    throw configError(`cannot read the kubeconfig file ${show(file)}: ${describeFsError(error)}`, {
      hint: 'check the file and its permissions',
      cause: error,
    })
  }
}

/** Parses one kubeconfig file (YAML or JSON). */
async function parseKubeconfig(
  text: string,
  file: string,
  show: (f: string) => string = (f) => f,
): Promise<LoadedFile> {
  const empty: LoadedFile = { file, clusters: [], users: [], contexts: [], currentContext: undefined }
  if (text.trim() === '') return empty
  let doc: unknown
  const trimmed = text.trimStart()
  let parsed = false
  if (trimmed.startsWith('{')) {
    // Generated kubeconfigs are often JSON: skip loading the YAML parser for them.
    try {
      doc = JSON.parse(text)
      parsed = true
    } catch {
      parsed = false
    }
  }
  if (!parsed) {
    // Most kubeconfigs fit the subset yaml-lite reads in well under a millisecond; only the others pay the ~30 ms
    // it takes to load the `yaml` package.
    doc = parseYamlLite(text)
    if (doc === undefined) {
      yamlModule ??= await import('yaml')
      doc = parseYaml(yamlModule, text, file, show)
    }
  }
  if (doc === null || doc === undefined) return empty
  if (!isRecord(doc)) throw configError(`the kubeconfig file ${show(file)} is not a kubeconfig (not a mapping)`)
  const where = show(file)
  const current = doc['current-context']
  if (current !== undefined && current !== null && typeof current !== 'string') {
    throw configError(`current-context in ${where} is not a string`)
  }
  return {
    file,
    clusters: namedList(doc, 'clusters', 'cluster', file, where),
    users: namedList(doc, 'users', 'user', file, where),
    contexts: namedList(doc, 'contexts', 'context', file, where),
    currentContext: current || undefined,
  }
}

let yamlModule: typeof import('yaml') | undefined

function parseYaml(yaml: typeof import('yaml'), text: string, file: string, show: (f: string) => string): unknown {
  try {
    // prettyErrors would quote the offending line, which may hold a token: report the position only.
    return yaml.parse(text, { prettyErrors: false })
  } catch (error) {
    const pos = (error as { pos?: [number, number] }).pos
    const line = pos ? text.slice(0, pos[0]).split('\n').length : undefined
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error)
    throw configError(
      `cannot parse the kubeconfig file ${show(file)}${line === undefined ? '' : ` (line ${line})`}: ${message}`,
      { hint: 'fix the YAML, or point --kubeconfig / KUBECONFIG at a valid kubeconfig' },
    )
  }
}

function namedList(doc: Record<string, unknown>, key: string, bodyKey: string, file: string, where: string): Entry[] {
  const list = doc[key]
  if (list === undefined || list === null) return []
  if (!Array.isArray(list)) throw configError(`${key} in ${where} is not a list`)
  const seen = new Set<string>()
  const entries: Entry[] = []
  for (const item of list) {
    if (!isRecord(item) || typeof item.name !== 'string' || item.name === '') {
      throw configError(`an entry of ${key} in ${where} has no name`)
    }
    if (seen.has(item.name)) {
      // client-go refuses a duplicate name inside one file (across files, the first file wins).
      throw configError(`${where} defines ${bodyKey} "${item.name}" twice`, { hint: 'remove one of them' })
    }
    seen.add(item.name)
    const body = item[bodyKey]
    if (body !== undefined && body !== null && !isRecord(body)) {
      throw configError(`${bodyKey} "${item.name}" in ${where} is not a mapping`)
    }
    entries.push({ name: item.name, body: body ?? {}, file })
  }
  return entries
}

/** client-go's merge: the first file to define a cluster, user or context name wins; so does the first current-context. */
function mergeKubeconfigs(files: readonly LoadedFile[]): MergedKubeconfig {
  const clusters = new Map<string, Entry>()
  const users = new Map<string, Entry>()
  const contexts = new Map<string, Entry>()
  let currentContext: MergedKubeconfig['currentContext']
  for (const file of files) {
    for (const entry of file.clusters) if (!clusters.has(entry.name)) clusters.set(entry.name, entry)
    for (const entry of file.users) if (!users.has(entry.name)) users.set(entry.name, entry)
    for (const entry of file.contexts) if (!contexts.has(entry.name)) contexts.set(entry.name, entry)
    if (!currentContext && file.currentContext) currentContext = { name: file.currentContext, file: file.file }
  }
  return { clusters, users, contexts, currentContext }
}

// ---------------------------------------------------------------------------------------------------------------
// Namespace

function pickNamespace(
  flags: ConnectionFlags,
  environment: KubeEnvironment,
  contextNamespace: string | undefined,
  contextFrom: string,
): Sourced<string> {
  const flag = nonEmpty(flags.namespace)
  if (flag !== undefined) return { value: flag, source: 'flag', from: '--namespace' }
  const fromEnv = nonEmpty(environment.env.AKM_NAMESPACE)
  if (fromEnv !== undefined) return { value: fromEnv, source: 'env', from: 'AKM_NAMESPACE' }
  if (contextNamespace !== undefined) return { value: contextNamespace, source: 'kubeconfig', from: contextFrom }
  return { value: DEFAULT_NAMESPACE, source: 'default', from: 'default' }
}

// ---------------------------------------------------------------------------------------------------------------
// In-cluster

function inClusterConnection(
  flags: ConnectionFlags,
  environment: KubeEnvironment,
  readFile: ReadFile,
): KubeConnection | undefined {
  const { env } = environment
  const host = nonEmpty(env.KUBERNETES_SERVICE_HOST)
  const port = nonEmpty(env.KUBERNETES_SERVICE_PORT)
  if (host === undefined || port === undefined) return undefined
  const dir = environment.serviceAccountDir
  const token = tryRead(readFile, path.join(dir, 'token'))
  if (token === undefined) return undefined
  if (nonEmpty(flags.context) !== undefined) {
    throw configError(`context "${flags.context}" (from --context) not found: there is no kubeconfig`, {
      hint: 'inside a pod akm-access uses the pod service account; pass --kubeconfig to use a kubeconfig instead',
    })
  }
  const tokenText = token.trim()
  registerSecret(tokenText)
  const caFile = path.join(dir, 'ca.crt')
  const ca = tryRead(readFile, caFile)
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host
  const cluster: ClusterConfig = {
    name: 'in-cluster',
    server: `https://${hostPart}:${port}`,
    certificateAuthorityData: ca,
    certificateAuthorityFile: ca === undefined ? undefined : caFile,
    insecureSkipTlsVerify: false,
    tlsServerName: undefined,
    proxyUrl: undefined,
    disableCompression: false,
    execExtension: undefined,
    definedIn: undefined,
  }
  const user: UserConfig = { ...emptyUser('in-cluster', undefined), token: tokenText, tokenSource: 'service account' }
  let podNamespace: Sourced<string> | undefined
  const fromPodEnv = nonEmpty(env.POD_NAMESPACE)
  const namespaceFile = path.join(dir, 'namespace')
  const fromFile = nonEmpty(tryRead(readFile, namespaceFile)?.trim())
  if (fromPodEnv !== undefined) podNamespace = { value: fromPodEnv, source: 'in-cluster', from: 'POD_NAMESPACE' }
  else if (fromFile !== undefined) {
    podNamespace = { value: fromFile, source: 'in-cluster', from: `the service account (${namespaceFile})` }
  }
  const namespace = pickNamespace(flags, environment, undefined, '')
  return {
    origin: { kind: 'in-cluster', serviceAccountDir: dir },
    context: undefined,
    namespace: namespace.source === 'default' && podNamespace ? podNamespace : namespace,
    cluster,
    user,
    contexts: [],
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Cluster and user entries

function buildCluster(entry: Entry, readFile: ReadFile, show: (f: string) => string): ClusterConfig {
  const where = `cluster "${entry.name}" in ${show(entry.file)}`
  const body = entry.body
  const dir = path.dirname(entry.file)
  const rawServer = nonEmpty(optionalString(body, 'server', where))
  if (rawServer === undefined) {
    throw configError(`${where} has no server`, { hint: 'fix the kubeconfig, or get a fresh one for your cluster' })
  }
  const server = normaliseServer(rawServer, where)
  const insecure = optionalBoolean(body, 'insecure-skip-tls-verify', where) ?? false
  let caData: string | undefined
  let caFile: string | undefined
  const caDataB64 = nonEmpty(optionalString(body, 'certificate-authority-data', where))
  const caPath = nonEmpty(optionalString(body, 'certificate-authority', where))
  if (caDataB64 !== undefined) {
    caData = decodePem(caDataB64, `certificate-authority-data of ${where}`, 'CERTIFICATE')
  } else if (caPath !== undefined) {
    caFile = path.resolve(dir, caPath)
    caData = readReferenced(readFile, caFile, `certificate-authority of ${where}`, show)
    if (!caData.includes('-----BEGIN CERTIFICATE-----')) {
      throw configError(`the certificate-authority file ${show(caFile)} of ${where} holds no PEM certificate`)
    }
  }
  if (insecure && caData !== undefined) {
    // Same rule, same reason as client-go: a CA and "trust anything" contradict each other.
    throw configError(`${where} sets both a certificate-authority and insecure-skip-tls-verify`, {
      hint: 'remove one of them (keeping the certificate authority is the safe choice)',
    })
  }
  let execExtension: unknown
  const extensions = body.extensions
  if (Array.isArray(extensions)) {
    for (const item of extensions) {
      if (isRecord(item) && item.name === 'client.authentication.k8s.io/exec') execExtension = item.extension
    }
  }
  return {
    name: entry.name,
    server,
    certificateAuthorityData: caData,
    certificateAuthorityFile: caFile,
    insecureSkipTlsVerify: insecure,
    tlsServerName: nonEmpty(optionalString(body, 'tls-server-name', where)),
    proxyUrl: nonEmpty(optionalString(body, 'proxy-url', where)),
    disableCompression: optionalBoolean(body, 'disable-compression', where) ?? false,
    execExtension,
    definedIn: entry.file,
  }
}

function normaliseServer(raw: string, where: string): string {
  // client-go accepts "host:port" and assumes https.
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`
  let url: URL
  try {
    url = new URL(withScheme)
  } catch {
    throw configError(`the server "${raw}" of ${where} is not a valid URL`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw configError(`the server "${raw}" of ${where} must be an https:// URL`)
  }
  return url.href.replace(/\/+$/, '')
}

function buildUser(entry: Entry, readFile: ReadFile, show: (f: string) => string, now: () => number): UserConfig {
  const where = `user "${entry.name}" in ${show(entry.file)}`
  const body = entry.body
  const dir = path.dirname(entry.file)

  let token = nonEmpty(optionalString(body, 'token', where))
  let tokenSource = token === undefined ? undefined : 'token'
  const tokenFile = nonEmpty(optionalString(body, 'tokenFile', where))
  if (tokenFile !== undefined) {
    // client-go: a readable tokenFile takes precedence over token; token is the fallback when it cannot be read.
    const resolved = path.resolve(dir, tokenFile)
    const text = token === undefined ? readReferenced(readFile, resolved, `tokenFile of ${where}`, show) : undefined
    const fromFile = (text ?? tryRead(readFile, resolved))?.trim()
    if (fromFile) {
      token = fromFile
      tokenSource = `tokenFile ${show(resolved)}`
    } else if (token === undefined) {
      throw configError(`the tokenFile ${show(resolved)} of ${where} is empty`)
    }
  }
  const username = nonEmpty(optionalString(body, 'username', where))
  const password = nonEmpty(optionalString(body, 'password', where))
  if (token !== undefined && (username !== undefined || password !== undefined)) {
    throw configError(`${where} has more than one authentication method (token and basic auth); only one is allowed`)
  }

  const certData = pemField(body, 'client-certificate', 'CERTIFICATE', where, dir, readFile, show)
  const keyData = pemField(body, 'client-key', 'PRIVATE KEY', where, dir, readFile, show)
  if ((certData === undefined) !== (keyData === undefined)) {
    throw configError(
      certData === undefined
        ? `${where} has a client key but no client-certificate(-data)`
        : `${where} has a client certificate but no client-key(-data)`,
      { hint: 'a client certificate needs both the certificate and its key' },
    )
  }

  const exec = body.exec === undefined || body.exec === null ? undefined : buildExec(body.exec, where, dir)
  const hasStatic = token !== undefined || username !== undefined || password !== undefined || certData !== undefined
  const authProvider = body['auth-provider']
  if (exec !== undefined && authProvider !== undefined && authProvider !== null) {
    throw configError(`${where} sets both exec and auth-provider; only one is allowed`)
  }
  if (!hasStatic && exec === undefined && authProvider !== undefined && authProvider !== null) {
    token = authProviderToken(authProvider, where, now)
    tokenSource = 'auth-provider oidc'
  }

  registerSecret(token)
  registerSecret(password)
  registerSecret(keyData)
  return {
    name: entry.name,
    definedIn: entry.file,
    token,
    tokenSource,
    username,
    password,
    clientCertificateData: certData,
    clientKeyData: keyData,
    exec,
    impersonate: buildImpersonation(body, where),
  }
}

function emptyUser(name: string, definedIn: string | undefined): UserConfig {
  return {
    name,
    definedIn,
    token: undefined,
    tokenSource: undefined,
    username: undefined,
    password: undefined,
    clientCertificateData: undefined,
    clientKeyData: undefined,
    exec: undefined,
    impersonate: undefined,
  }
}

function pemField(
  body: Record<string, unknown>,
  key: string,
  pemType: string,
  where: string,
  dir: string,
  readFile: ReadFile,
  show: (f: string) => string,
): string | undefined {
  const data = nonEmpty(optionalString(body, `${key}-data`, where))
  if (data !== undefined) return decodePem(data, `${key}-data of ${where}`, pemType)
  const file = nonEmpty(optionalString(body, key, where))
  if (file === undefined) return undefined
  const resolved = path.resolve(dir, file)
  const text = readReferenced(readFile, resolved, `${key} of ${where}`, show)
  if (!text.includes('-----BEGIN')) throw configError(`the ${key} file ${show(resolved)} of ${where} is not PEM`)
  return text
}

function buildExec(raw: unknown, where: string, dir: string): ExecConfig {
  const execWhere = `the exec plugin of ${where}`
  if (!isRecord(raw)) throw configError(`${execWhere} is not a mapping`)
  const command = nonEmpty(optionalString(raw, 'command', execWhere))
  if (command === undefined) throw configError(`${execWhere} has no command`)
  const apiVersion = nonEmpty(optionalString(raw, 'apiVersion', execWhere))
  if (apiVersion === undefined) {
    throw configError(`${execWhere} has no apiVersion`, {
      hint: 'set apiVersion: client.authentication.k8s.io/v1beta1 (or regenerate the kubeconfig)',
    })
  }
  if (!EXEC_API_VERSIONS.includes(apiVersion)) {
    throw configError(`${execWhere} uses ${apiVersion}, which kubectl no longer supports`, {
      hint:
        'regenerate the kubeconfig with an up-to-date cloud CLI (e.g. `aws eks update-kubeconfig`), or change ' +
        'apiVersion to client.authentication.k8s.io/v1beta1',
    })
  }
  const args = raw.args === undefined || raw.args === null ? [] : raw.args
  if (!Array.isArray(args) || !args.every((arg) => typeof arg === 'string')) {
    throw configError(`the args of ${execWhere} are not a list of strings`)
  }
  const envList = raw.env === undefined || raw.env === null ? [] : raw.env
  if (!Array.isArray(envList)) throw configError(`the env of ${execWhere} is not a list`)
  const env = envList.map((item) => {
    if (!isRecord(item) || typeof item.name !== 'string' || typeof (item.value ?? '') !== 'string') {
      throw configError(`the env of ${execWhere} must be a list of {name, value}`)
    }
    return { name: item.name, value: (item.value as string | undefined) ?? '' }
  })
  const mode = optionalString(raw, 'interactiveMode', execWhere) ?? 'IfAvailable'
  if (mode !== 'Never' && mode !== 'IfAvailable' && mode !== 'Always') {
    throw configError(`the interactiveMode "${mode}" of ${execWhere} is not Never, IfAvailable or Always`)
  }
  // As client-go: only a command with a path separator is relative to the kubeconfig; a bare name is looked up in PATH.
  const resolvedCommand =
    (command.includes('/') || command.includes(path.sep)) && !path.isAbsolute(command)
      ? path.resolve(dir, command)
      : command
  return {
    command: resolvedCommand,
    args,
    env,
    apiVersion,
    installHint: nonEmpty(optionalString(raw, 'installHint', execWhere)),
    provideClusterInfo: optionalBoolean(raw, 'provideClusterInfo', execWhere) ?? false,
    interactiveMode: mode as ExecInteractiveMode,
  }
}

function authProviderToken(raw: unknown, where: string, now: () => number): string {
  const name = isRecord(raw) && typeof raw.name === 'string' ? raw.name : ''
  const config = isRecord(raw) && isRecord(raw.config) ? raw.config : {}
  if (name === 'oidc') {
    // The legacy oidc provider keeps a cached id-token in the kubeconfig: use it while it is valid. Refreshing it
    // would mean OIDC discovery and a token request; kubectl does that and writes the new token back.
    const idToken = typeof config['id-token'] === 'string' ? config['id-token'] : undefined
    registerSecret(idToken)
    registerSecret(typeof config['refresh-token'] === 'string' ? config['refresh-token'] : undefined)
    registerSecret(typeof config['client-secret'] === 'string' ? config['client-secret'] : undefined)
    const expiry = idToken ? jwtExpiry(idToken) : undefined
    if (idToken && (expiry === undefined || expiry * 1000 > now() + 10_000)) return idToken
    throw configError(
      `the oidc id-token of ${where} ${idToken ? 'has expired' : 'is missing'}, and akm-access cannot refresh legacy auth-provider credentials`,
      {
        exitCode: ExitCode.unauthorized,
        hint:
          'run any kubectl command once (e.g. `kubectl get ns`) so that kubectl refreshes the token, or switch this ' +
          'user to the kubelogin exec plugin (`kubectl oidc-login`), which akm-access supports',
      },
    )
  }
  const hints: Record<string, string> = {
    gcp: 'the gcp auth-provider was removed from kubectl 1.26: install gke-gcloud-auth-plugin and run `gcloud container clusters get-credentials <cluster>`',
    azure:
      'the azure auth-provider was removed from kubectl 1.26: install kubelogin and run `kubelogin convert-kubeconfig -l azurecli`',
  }
  throw configError(`${where} uses the legacy auth-provider "${name}", which akm-access does not support`, {
    hint: hints[name] ?? 'use a client-go credential plugin (users[].user.exec) instead; your provider documents one',
  })
}

function jwtExpiry(token: string): number | undefined {
  const payload = token.split('.')[1]
  if (!payload) return undefined
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown }
    return typeof claims.exp === 'number' ? claims.exp : undefined
  } catch {
    return undefined
  }
}

function buildImpersonation(body: Record<string, unknown>, where: string): Impersonation | undefined {
  const user = nonEmpty(optionalString(body, 'as', where))
  const uid = nonEmpty(optionalString(body, 'as-uid', where))
  const groupsRaw = body['as-groups']
  const groups = groupsRaw === undefined || groupsRaw === null ? [] : groupsRaw
  if (!Array.isArray(groups) || !groups.every((group) => typeof group === 'string')) {
    throw configError(`as-groups of ${where} is not a list of strings`)
  }
  const extraRaw = body['as-user-extra']
  const extra: Record<string, string[]> = {}
  if (isRecord(extraRaw)) {
    for (const [key, values] of Object.entries(extraRaw)) {
      if (!Array.isArray(values) || !values.every((value) => typeof value === 'string')) {
        throw configError(`as-user-extra "${key}" of ${where} is not a list of strings`)
      }
      extra[key] = values
    }
  }
  if (user === undefined && uid === undefined && groups.length === 0 && Object.keys(extra).length === 0) {
    return undefined
  }
  return { user, uid, groups, extra }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

function decodePem(base64: string, what: string, pemType: string): string {
  const clean = base64.replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw configError(`the ${what} is not valid base64`)
  const text = Buffer.from(clean, 'base64').toString('utf8')
  if (!text.includes('-----BEGIN') || (pemType === 'CERTIFICATE' && !text.includes('CERTIFICATE'))) {
    throw configError(`the ${what} does not hold a PEM ${pemType === 'CERTIFICATE' ? 'certificate' : 'key'}`)
  }
  return text
}

function readReferenced(readFile: ReadFile, file: string, what: string, show: (f: string) => string): string {
  try {
    return readFile(file).toString('utf8')
  } catch (error) {
    throw configError(`cannot read the ${what} (${show(file)}): ${describeFsError(error)}`, {
      hint: 'relative paths in a kubeconfig are relative to the kubeconfig file itself',
      cause: error,
    })
  }
}

function tryRead(readFile: ReadFile, file: string): string | undefined {
  try {
    return readFile(file).toString('utf8')
  } catch {
    return undefined
  }
}

function optionalString(body: Record<string, unknown>, key: string, where: string): string | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  // kubectl reads `namespace: 123` as the string "123" (its YAML decoder follows the Go field types).
  if (typeof value === 'number') return String(value)
  if (typeof value !== 'string') throw configError(`${key} of ${where} is not a string`)
  return value
}

function optionalBoolean(body: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const value = body[key]
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'boolean') throw configError(`${key} of ${where} is not true or false`)
  return value
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function errnoCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined
}

function describeFsError(error: unknown): string {
  const code = errnoCode(error)
  const known: Record<string, string> = {
    ENOENT: 'no such file',
    EACCES: 'permission denied',
    EISDIR: 'it is a directory',
    EPERM: 'operation not permitted',
  }
  return (code && known[code]) ?? (error instanceof Error ? error.message : String(error))
}

/**
 * Nothing configures Kubernetes here: no --kubeconfig, no KUBECONFIG, no ~/.kube/config, not in a pod. Unlike a
 * broken configuration, this may mean a docker-compose installation (backend/choose.ts looks for one).
 */
export class NoKubernetesConfiguration extends AccessError {
  override readonly name = 'NoKubernetesConfiguration'
  constructor(message: string, hint: string) {
    super(message, { exitCode: ExitCode.config, hint })
  }
}

function configError(
  message: string,
  options: { hint?: string; cause?: unknown; exitCode?: number } = {},
): AccessError {
  return new AccessError(message, { exitCode: ExitCode.config, ...options })
}
