/**
 * `akm-access ssh-config`: a Host entry with which plain OpenSSH (ssh, scp, sftp, rsync, VS Code Remote-SSH) reaches
 * the management pod through `akm-access proxy`, trusting the host key akm-access verified (stored under a stable
 * alias in its own known_hosts), with the credentials of the installation:
 *
 * - a private key in the Secret: written once for OpenSSH (`~/.config/akm-access/keys/<host>`, 0600);
 * - a password only: nothing is written. OpenSSH cannot read a password from a config file, and SSH_ASKPASS must be
 *   in ssh's own environment, which no config option can set (SetEnv goes to the server). So the entry carries a
 *   `Match exec` that runs `akm-access ssh-master`: it starts, once, a master ssh with akm-access's askpass hook in
 *   *its* environment (see ssh-master.ts), and the entry's ControlPath sends every later ssh through it.
 *
 * Before writing, it connects once with akm-access's own host key verification (a question, or
 * --accept-new-host-key), so that OpenSSH can then be strict (`StrictHostKeyChecking yes`).
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdirSync, rmSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, join } from 'node:path'
import type { Deps } from '../deps.js'
import { AccessError, ExitCode } from '../errors.js'
import type { KubeClient } from '../kube/client.js'
import { defaultKnownHostsPath } from '../ssh/known-hosts.js'
import {
  type HostEntry,
  installHostBlock,
  readIfExists,
  renderHostBlock,
  sshConfigPaths,
  uninstallHostBlock,
  type WriteResult,
  writeFileAtomic,
} from '../ssh/ssh-config-file.js'
import { isMasterAlive } from '../ssh/ssh-master.js'
import type { TargetOptions } from '../target/find-target.js'
import { say } from '../terminal/io.js'
import {
  connectToPod,
  locateManagementPod,
  type PodLocation,
  type SshAccessOptions,
  usableCredentials,
} from './ssh-access.js'

export { shellQuote } from '../ssh/ssh-config-file.js'

/** The cluster flags as the user gave them. */
export interface ClusterFlags {
  kubeconfig?: string | undefined
  context?: string | undefined
  namespace?: string | undefined
}

export interface SshConfigOptions extends SshAccessOptions {
  /** The name to type after ssh. */
  host: string
  /** Add to ~/.ssh/config (through an Included file of ours) instead of printing. */
  write: boolean
  /** Remove the host's entry (and its key file) instead. */
  remove: boolean
  /** How OpenSSH runs akm-access: [node, bin/run.js] as absolute paths. */
  self: string[]
  cluster: ClusterFlags
}

export interface SshConfigResult {
  host: string
  /** What happened to the key file (key installations). */
  keyWritten?: 'created' | 'updated' | 'unchanged'
  /** How ssh logs in. */
  auth: 'key' | 'password' | 'removed' | 'absent'
  /** The Host entry (also printed on stdout without --write). */
  entry?: string
  written?: WriteResult
  managedConfig?: string
  keyFile?: string
}

/** How long a password installation's master connection stays up with no ssh using it. */
export const masterPersist = '15m'

export async function runSshConfig(
  options: SshConfigOptions,
  deps: Pick<Deps, 'io' | 'kube' | 'prompter' | 'logger'>,
): Promise<SshConfigResult> {
  const { io } = deps
  assertHostName(options.host)
  const home = io.env.HOME || homedir()
  const paths = sshConfigPaths(home)
  if (options.remove) {
    const removed = uninstallHostBlock(paths, options.host)
    rmSync(keyFilePath(io.env, options.host), { force: true })
    await stopMaster(controlPathFor(io.env, options.host), options.host)
    return { host: options.host, auth: removed ? 'removed' : 'absent', managedConfig: paths.managedConfig }
  }

  const { location, credentials } = await locateManagementPod(options, deps)
  const found = await credentials()
  const sshCredentials = await usableCredentials(found, options.passphraseFile, deps)
  // Once with our own verification: OpenSSH then finds the key under the alias and can be strict.
  const connection = await connectToPod(location, sshCredentials, options, deps)
  connection.end()

  let keyFile: string | undefined
  let keyWritten: SshConfigResult['keyWritten']
  if (sshCredentials.privateKey && found.privateKey) {
    keyFile = keyFilePath(io.env, options.host)
    keyWritten = writeKey(keyFile, found.privateKey)
  } else if (sshCredentials.password === undefined) {
    // usableCredentials already refuses this; kept for the type.
    throw new AccessError(`${found.source} holds no usable credentials`, { exitCode: ExitCode.badCredentials })
  }
  const entry = hostEntry(location, options, io.env, keyFile)
  if (entry.master) writeMasterCheckScript(io.env)
  const block = renderHostBlock(entry)
  const result: SshConfigResult = {
    host: options.host,
    auth: keyFile ? 'key' : 'password',
    entry: block,
    ...(keyFile ? { keyFile, keyWritten } : {}),
  }
  if (!options.write) return result
  return { ...result, written: installHostBlock(paths, options.host, block), managedConfig: paths.managedConfig }
}

/** The Host entry for the installation `location` points to (shared with ssh-master, which rebuilds it). */
export function hostEntry(
  location: PodLocation,
  options: Pick<
    SshConfigOptions,
    'host' | 'user' | 'remotePort' | 'self' | 'cluster' | 'target' | 'credentials' | 'knownHostsFile'
  >,
  env: NodeJS.ProcessEnv,
  keyFile: string | undefined,
): HostEntry {
  const pinned = [
    ...pinnedClusterArgs(location.client, location.namespace, options.cluster),
    ...targetArgs(options.target),
  ]
  const envPrefix = pinnedEnvironment(location.client, options.cluster)
  const proxy = [...envPrefix, ...options.self, 'proxy', ...pinned]
  if (options.remotePort !== 22) proxy.push('--remote-port', String(options.remotePort))
  const context = location.client.connection.context?.value
  return {
    host: options.host,
    description:
      `The Akamas management pod in namespace ${location.namespace} of ${location.client.connection.cluster.server}` +
      `${context ? ` (context ${context})` : ''}.`,
    user: options.user,
    proxyCommand: proxy,
    hostKeyAlias: location.hostKeyAlias,
    knownHostsFile: location.knownHostsFile,
    identityFile: keyFile,
    master: keyFile
      ? undefined
      : {
          command: [
            masterCheckScript(env),
            controlPathFor(env, options.host),
            ...envPrefix,
            ...options.self,
            'ssh-master',
            '--host',
            options.host,
            ...pinned,
            ...credentialArgs(options.credentials),
            ...(options.user !== 'akamas' ? ['--user', options.user] : []),
            ...(options.knownHostsFile ? ['--known-hosts', location.knownHostsFile] : []),
            ...(options.remotePort !== 22 ? ['--remote-port', String(options.remotePort)] : []),
          ],
          controlPath: controlPathFor(env, options.host),
        },
  }
}

/**
 * The cluster flags that make `akm-access proxy` reach this installation later, from whatever shell or editor runs
 * ssh: the context and namespace always (the host key alias is tied to them), the kubeconfig when it was not the
 * default one (a KUBECONFIG set in this shell may not be set in VS Code's).
 */
function pinnedClusterArgs(client: KubeClient, namespace: string, cluster: ClusterFlags): string[] {
  const args: string[] = []
  const origin = client.connection.origin
  if (origin.kind === 'kubeconfig' && (origin.source === 'flag' || origin.files.length === 1)) {
    if (origin.source !== 'default') args.push('--kubeconfig', origin.files[0]!)
  }
  const context = cluster.context ?? client.connection.context?.value
  if (context) args.push('--context', context)
  args.push('--namespace', namespace)
  return args
}

/** KUBECONFIG naming several files cannot be one --kubeconfig: pass it on as it is. */
function pinnedEnvironment(client: KubeClient, cluster: ClusterFlags): string[] {
  const origin = client.connection.origin
  if (cluster.kubeconfig || origin.kind !== 'kubeconfig' || origin.source !== 'env' || origin.files.length < 2)
    return []
  return ['/usr/bin/env', `KUBECONFIG=${origin.files.join(':')}`]
}

function targetArgs(target: TargetOptions): string[] {
  const args: string[] = []
  if (target.pod) args.push('--pod', target.pod)
  if (target.selector) args.push('--selector', target.selector)
  if (target.container) args.push('--container', target.container)
  return args
}

function credentialArgs(credentials: SshConfigOptions['credentials']): string[] {
  const args: string[] = []
  if (credentials.secret) args.push('--secret', credentials.secret)
  if (credentials.password) args.push('--password-field', credentials.password)
  if (credentials.privateKey) args.push('--key-field', credentials.privateKey)
  return args
}

/** ~/.config/akm-access (or under $XDG_CONFIG_HOME). */
export function configDir(env: NodeJS.ProcessEnv): string {
  return dirname(defaultKnownHosts(env))
}

export function defaultKnownHosts(env: NodeJS.ProcessEnv): string {
  return defaultKnownHostsPath(env, env.HOME || homedir())
}

export function keyFilePath(env: NodeJS.ProcessEnv, host: string): string {
  return join(configDir(env), 'keys', host)
}

/** Where a password installation's master listens. Kept short: a Unix socket path has ~100 bytes at most. */
export function controlPathFor(env: NodeJS.ProcessEnv, host: string): string {
  const path = join(configDir(env), 'mux', host)
  // ssh binds "<ControlPath>.<16 random characters>" first, then renames it.
  if (Buffer.byteLength(path) + 17 > 100) {
    throw new AccessError(`the control socket path ${path} is too long for a Unix socket`, {
      exitCode: ExitCode.local,
      hint: 'use a shorter --host, or set XDG_CONFIG_HOME to a shorter folder',
    })
  }
  return path
}

export function masterCheckScript(env: NodeJS.ProcessEnv): string {
  return join(configDir(env), 'ssh-master-check')
}

/**
 * What `Match exec` runs, on every ssh to a password installation. The common case, a master that is up, is
 * answered by `ssh -O check` in a few milliseconds, without starting Node; otherwise akm-access ssh-master (the rest
 * of the arguments) starts one. A script of its own, so that it is sh whatever the user's shell is.
 */
function writeMasterCheckScript(env: NodeJS.ProcessEnv): void {
  writeScript(
    masterCheckScript(env),
    [
      '#!/bin/sh',
      "# akm-access (ssh-config): run by OpenSSH's Match exec for a password installation. Holds no secret.",
      '# Usage: ssh-master-check CONTROL_PATH COMMAND...: true at once if the master on CONTROL_PATH answers,',
      '# otherwise runs COMMAND (akm-access ssh-master), which starts it.',
      'control_path=$1',
      'shift',
      'ssh -F none -o ControlPath="$control_path" -O check akm-access >/dev/null 2>&1 && exit 0',
      'exec "$@"',
      '',
    ].join('\n'),
  )
}

/** An executable of ours (0700), rewritten only when its content changes. */
export function writeScript(file: string, script: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  if (readIfExists(file) !== script) writeFileAtomic(file, script, 0o700)
  chmodSync(file, 0o700)
}

/** Closes a password installation's master connection, if one is up (as `ssh -O exit HOST` would). */
async function stopMaster(controlPath: string, host: string): Promise<void> {
  if (!(await isMasterAlive(controlPath))) return
  spawnSync('ssh', ['-F', 'none', '-o', `ControlPath=${controlPath}`, '-O', 'exit', host], { stdio: 'ignore' })
}

/** The key as OpenSSH wants it: LF line ends and a final newline (without one, OpenSSH calls it invalid). */
function writeKey(file: string, key: string): 'created' | 'updated' | 'unchanged' {
  if (/^PuTTY-User-Key-File/m.test(key)) {
    throw new AccessError('the private key in the Secret is a PuTTY key, which OpenSSH cannot read', {
      exitCode: ExitCode.badCredentials,
      hint: 'convert it with: puttygen key.ppk -O private-openssh -o key (and store that in the Secret)',
    })
  }
  const text = `${key.replace(/\r\n/g, '\n').trimEnd()}\n`
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  chmodSync(dirname(file), 0o700)
  // Written once: an identical key is left alone (its mtime too); a rotated one is replaced.
  const before = readIfExists(file)
  if (before === text) return 'unchanged'
  writeFileAtomic(file, text, 0o600)
  return before === undefined ? 'created' : 'updated'
}

function assertHostName(host: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(host)) {
    throw new AccessError(`invalid --host ${JSON.stringify(host)}`, {
      exitCode: ExitCode.usage,
      hint: 'use letters, digits, dots, dashes and underscores (it becomes an ssh Host name: ssh NAME)',
    })
  }
}

/** What to tell the person after the entry is in place. */
export function usageLines(result: SshConfigResult, configFile: string | undefined): string[] {
  const host = result.host
  const f = configFile ? ` -F ${configFile}` : ''
  return [
    `  ssh${f} ${host}`,
    `  scp${f} FILE ${host}:/work/`,
    `  rsync -av${configFile ? ` -e 'ssh -F ${configFile}'` : ''} DIR/ ${host}:/work/DIR/`,
    `  sftp${f} ${host}`,
    `  VS Code: Remote-SSH: Connect to Host… → ${host}`,
  ]
}

export function reportWrite(deps: Pick<Deps, 'io'>, result: SshConfigResult, userConfig: string): void {
  const { io } = deps
  if (result.keyFile && result.keyWritten !== 'unchanged') {
    say(
      io,
      `${result.keyWritten === 'created' ? 'wrote' : 'updated'} the private key for OpenSSH: ${result.keyFile} (0600)`,
    )
  }
  const written = result.written
  if (!written) return
  const what =
    written.managedConfig === 'unchanged'
      ? `the entry for ${result.host} in ${result.managedConfig} is up to date`
      : `${written.managedConfig === 'created' ? 'wrote' : 'updated'} the entry for ${result.host} in ${result.managedConfig}`
  say(io, what)
  if (written.userConfig !== 'unchanged') say(io, `added an Include of it at the top of ${userConfig}`)
}
