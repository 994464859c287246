/**
 * Runs client-go credential plugins (`users[].user.exec`: aws eks get-token, gke-gcloud-auth-plugin, kubelogin…) the
 * way kubectl does. We run them ourselves rather than through @kubernetes/client-node, which captures the plugin's
 * stderr (so a device-code prompt is invisible and the login seems to hang), never sets KUBERNETES_EXEC_INFO, and
 * ignores interactiveMode, provideClusterInfo and installHint. Here stdin (when interactive) and stderr are the
 * user's terminal, stdout is captured and parsed as an ExecCredential, and the result is cached for the process.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { AccessError, ExitCode } from '../errors.js'
import { type Logger, silentLogger } from '../log.js'
import { registerSecret } from '../redact.js'
import type { ClusterConfig, Env, ExecConfig } from './types.js'

/** The credential a plugin returned: a bearer token, or a client certificate and key (PEM). */
export interface ExecCredential {
  readonly token: string | undefined
  readonly clientCertificateData: string | undefined
  readonly clientKeyData: string | undefined
  /** Milliseconds since the epoch; undefined = valid for the whole run. */
  readonly expiresAt: number | undefined
}

/**
 * What the plugin is connected to. kubectl gives it our stdin only in interactive mode, and always our stderr.
 * Numbers are file descriptors (tests pass the descriptor of a temporary file).
 */
export interface ExecPluginIo {
  readonly stdin: 'inherit' | number
  readonly stderr: 'inherit' | number
  /** Whether our stdin is a terminal: decides interactive mode for `IfAvailable`. */
  readonly stdinIsTTY: boolean
}

export interface ExecCredentialContext {
  /** Our environment; the plugin inherits it, plus its `env` entries and KUBERNETES_EXEC_INFO. */
  readonly env: Env
  /** Defaults to this process's stdin and stderr. */
  readonly io?: ExecPluginIo
  readonly logger?: Logger
  /** For expiry checks; defaults to Date.now. */
  readonly now?: () => number
}

export interface GetExecCredentialOptions {
  /** Ignore a cached credential (after the API server rejected it with 401). */
  readonly refresh?: boolean
}

const cache = new Map<string, Promise<ExecCredential>>()

/**
 * Returns the credential for this plugin and cluster: from the in-memory cache while it has not expired, otherwise by
 * running the plugin once (concurrent callers share the run).
 */
export function getExecCredential(
  exec: ExecConfig,
  cluster: ClusterConfig,
  context: ExecCredentialContext,
  options: GetExecCredentialOptions = {},
): Promise<ExecCredential> {
  const key = JSON.stringify([exec, cluster.server, cluster.name])
  const now = context.now ?? Date.now
  const cached = cache.get(key)
  if (cached && !options.refresh) {
    return cached.then((credential) => {
      if (credential.expiresAt === undefined || credential.expiresAt > now()) return credential
      if (cache.get(key) === cached) cache.delete(key)
      return getExecCredential(exec, cluster, context)
    })
  }
  const running = runExecPlugin(exec, cluster, context)
  cache.set(key, running)
  running.catch(() => {
    if (cache.get(key) === running) cache.delete(key)
  })
  return running
}

/** Forget every cached credential (tests; a long-running process after logout). */
export function clearExecCredentialCache(): void {
  cache.clear()
}

/** Whether the plugin runs interactively (gets our stdin), following interactiveMode as client-go does. */
export function isInteractive(exec: ExecConfig, stdinIsTTY: boolean): boolean {
  if (exec.interactiveMode === 'Never') return false
  if (exec.interactiveMode === 'Always' && !stdinIsTTY) {
    throw new AccessError(
      `the credential plugin ${commandName(exec)} needs an interactive terminal (interactiveMode: Always), but standard input is not a terminal`,
      {
        exitCode: ExitCode.unauthorized,
        hint: 'run akm-access from a terminal, or log in first so that the plugin has a cached credential',
      },
    )
  }
  return stdinIsTTY
}

/** The KUBERNETES_EXEC_INFO value kubectl hands to the plugin. */
export function execInfo(exec: ExecConfig, cluster: ClusterConfig, interactive: boolean): string {
  const spec: Record<string, unknown> = { interactive }
  if (exec.provideClusterInfo) {
    const info: Record<string, unknown> = { server: cluster.server }
    if (cluster.tlsServerName) info['tls-server-name'] = cluster.tlsServerName
    if (cluster.insecureSkipTlsVerify) info['insecure-skip-tls-verify'] = true
    if (cluster.certificateAuthorityData) {
      info['certificate-authority-data'] = Buffer.from(cluster.certificateAuthorityData).toString('base64')
    }
    if (cluster.proxyUrl) info['proxy-url'] = cluster.proxyUrl
    if (cluster.disableCompression) info['disable-compression'] = true
    if (cluster.execExtension !== undefined) info.config = cluster.execExtension
    spec.cluster = info
  }
  return JSON.stringify({ kind: 'ExecCredential', apiVersion: exec.apiVersion, spec })
}

/** Runs the plugin once (no cache) and parses its ExecCredential. */
export async function runExecPlugin(
  exec: ExecConfig,
  cluster: ClusterConfig,
  context: ExecCredentialContext,
): Promise<ExecCredential> {
  const io = context.io ?? { stdin: 'inherit', stderr: 'inherit', stdinIsTTY: Boolean(process.stdin.isTTY) }
  const logger = context.logger ?? silentLogger
  const interactive = isInteractive(exec, io.stdinIsTTY)
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(context.env)) if (value !== undefined) env[name] = value
  for (const { name, value } of exec.env) env[name] = value
  env.KUBERNETES_EXEC_INFO = execInfo(exec, cluster, interactive)

  const name = commandName(exec)
  const started = performance.now()
  logger.debug(`running credential plugin ${name} (${exec.apiVersion}, interactive=${interactive})`)
  const { code, signal, stdout, spawnError } = await new Promise<{
    code: number | null
    signal: NodeJS.Signals | null
    stdout: Buffer
    spawnError: NodeJS.ErrnoException | undefined
  }>((resolve) => {
    const chunks: Buffer[] = []
    let child: ReturnType<typeof spawn>
    try {
      child = spawn(exec.command, [...exec.args], {
        env,
        stdio: [interactive ? io.stdin : 'ignore', 'pipe', io.stderr],
        windowsHide: true,
      })
    } catch (error) {
      resolve({ code: null, signal: null, stdout: Buffer.alloc(0), spawnError: error as NodeJS.ErrnoException })
      return
    }
    let spawnError: NodeJS.ErrnoException | undefined
    child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk))
    child.on('error', (error: NodeJS.ErrnoException) => {
      spawnError ??= error
    })
    child.on('close', (exitCode, exitSignal) => {
      resolve({ code: exitCode, signal: exitSignal, stdout: Buffer.concat(chunks), spawnError })
    })
  })
  logger.debug(`credential plugin ${name} finished in ${(performance.now() - started).toFixed(0)} ms`)

  if (spawnError) {
    if (spawnError.code === 'ENOENT') {
      const where = exec.command.includes('/') ? `at ${exec.command}` : 'on the PATH'
      throw new AccessError(`the kubeconfig's credential plugin ${name} was not found ${where}`, {
        exitCode: ExitCode.config,
        hint:
          exec.installHint?.trim().replace(/\s*\n\s*/g, ' ') ??
          `install ${name} and make sure it is on your PATH (it is the exec plugin your kubeconfig names)`,
        cause: spawnError,
      })
    }
    throw new AccessError(`cannot run the credential plugin ${name}: ${spawnError.message}`, {
      exitCode: ExitCode.config,
      hint: exec.command.includes('/') ? `check that ${exec.command} is executable` : undefined,
      cause: spawnError,
    })
  }
  if (code !== 0) {
    const how = signal ? `was killed by ${signal}` : `failed with exit code ${code}`
    throw new AccessError(`the credential plugin ${name} ${how}`, {
      exitCode: ExitCode.unauthorized,
      hint: `its own messages are above; usually this means logging in again with your cloud CLI (e.g. \`aws sso login\`, \`gcloud auth login\`, \`az login\`), then retry`,
    })
  }
  return parseExecCredential(stdout.toString('utf8'), exec, name)
}

/** Validates the plugin's stdout. Never puts the output itself in an error: it may hold a token. */
export function parseExecCredential(text: string, exec: ExecConfig, name = commandName(exec)): ExecCredential {
  const invalid = (why: string) =>
    new AccessError(`the credential plugin ${name} returned an invalid ExecCredential: ${why}`, {
      exitCode: ExitCode.unauthorized,
      hint: 'check the plugin version, or run it by hand to see what it prints',
    })
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch {
    // JSON.parse's message quotes the text, which could hold a token.
    throw invalid(text.trim() === '' ? 'its output is empty' : 'its output is not JSON')
  }
  if (typeof doc !== 'object' || doc === null) throw invalid('its output is not a JSON object')
  const record = doc as Record<string, unknown>
  const status = record.status
  if (typeof status === 'object' && status !== null) {
    const s = status as Record<string, unknown>
    registerSecret(typeof s.token === 'string' ? s.token : undefined)
    registerSecret(typeof s.clientKeyData === 'string' ? s.clientKeyData : undefined)
  }
  if (record.kind !== 'ExecCredential') throw invalid(`kind is ${JSON.stringify(record.kind)}, not ExecCredential`)
  if (record.apiVersion !== exec.apiVersion) {
    throw invalid(`it uses apiVersion ${String(record.apiVersion)}, but the kubeconfig asks for ${exec.apiVersion}`)
  }
  if (typeof status !== 'object' || status === null) throw invalid('it has no status')
  const s = status as Record<string, unknown>
  const token = typeof s.token === 'string' && s.token !== '' ? s.token : undefined
  const cert =
    typeof s.clientCertificateData === 'string' && s.clientCertificateData !== '' ? s.clientCertificateData : undefined
  const key = typeof s.clientKeyData === 'string' && s.clientKeyData !== '' ? s.clientKeyData : undefined
  if ((cert === undefined) !== (key === undefined)) {
    throw invalid('it has a client certificate without its key (or a key without its certificate)')
  }
  if (token === undefined && cert === undefined) throw invalid('it has neither a token nor a client certificate')
  let expiresAt: number | undefined
  if (s.expirationTimestamp !== undefined && s.expirationTimestamp !== null) {
    expiresAt = typeof s.expirationTimestamp === 'string' ? Date.parse(s.expirationTimestamp) : Number.NaN
    if (Number.isNaN(expiresAt)) throw invalid('its expirationTimestamp is not an RFC 3339 time')
  }
  return { token, clientCertificateData: cert, clientKeyData: key, expiresAt }
}

function commandName(exec: ExecConfig): string {
  return `"${path.basename(exec.command)}"`
}
