/**
 * OpenSSH client configuration that akm-access writes: a Host entry per installation in a file of its own
 * (`~/.ssh/akm-access/config`), reached from the user's `~/.ssh/config` by one `Include` line at the top. The user's
 * file is otherwise left byte for byte as it was; our file holds one marked block per host, so that writing the
 * same host again replaces its block and leaves the others alone.
 *
 * Paths are written absolute, never `~/…`: OpenSSH expands `~` from the password database, not from $HOME, so a
 * `~` would point elsewhere whenever the two differ.
 */
import { chmodSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { AccessError, ExitCode } from '../errors.js'

/** One installation as OpenSSH should reach it. */
export interface HostEntry {
  /** The name to type: `ssh akamas`. */
  host: string
  /** One line, for the comment above the entry. */
  description: string
  user: string
  /** argv of `akm-access proxy …` (absolute paths). */
  proxyCommand: string[]
  hostKeyAlias: string
  knownHostsFile: string
  /** Key installations: the private key written for OpenSSH (mode 0600). */
  identityFile?: string | undefined
  /**
   * Password installations: OpenSSH cannot take a password from a config file (and must not), and SSH_ASKPASS
   * has to be in ssh's own environment, which a config cannot set. So a `Match exec` starts (once) a master ssh
   * that akm-access spawns with its askpass hook in the environment, and every ssh, scp, sftp or rsync for this
   * host then rides that master's connection through `ControlPath`.
   */
  master?: { command: string[]; controlPath: string } | undefined
}

/** The options of the entry as `-o` pairs, in the order written (also what the master ssh gets on its command line). */
export function hostOptions(entry: HostEntry): [string, string][] {
  const options: [string, string][] = [
    ['User', entry.user],
    ['ProxyCommand', entry.proxyCommand.map(shellQuote).map(escapePercent).join(' ')],
    // The pod's host key is stored under a stable name in akm-access's known_hosts, whatever pod or port serves it.
    ['HostKeyAlias', entry.hostKeyAlias],
    ['UserKnownHostsFile', configPath(entry.knownHostsFile)],
    ['StrictHostKeyChecking', 'yes'],
    ['CheckHostIP', 'no'],
    // Keep OpenSSH from adding keys of its own to our file.
    ['UpdateHostKeys', 'no'],
    // Under the usual 60 s idle timeout of load balancers in front of the API server.
    ['ServerAliveInterval', '30'],
  ]
  if (entry.identityFile) {
    options.push(['IdentityFile', configPath(entry.identityFile)], ['IdentitiesOnly', 'yes'])
  } else {
    // Agent keys would only use up sshd's MaxAuthTries before the password is tried.
    options.push(['PubkeyAuthentication', 'no'], ['PreferredAuthentications', 'password,keyboard-interactive'])
  }
  return options
}

const beginMarker = (host: string) => `# >>> akm-access ${host} >>>`
const endMarker = (host: string) => `# <<< akm-access ${host} <<<`

/** The marked block for one host. */
export function renderHostBlock(entry: HostEntry): string {
  const lines = [beginMarker(entry.host), `# ${entry.description}`, `Host ${entry.host}`]
  for (const [key, value] of hostOptions(entry)) lines.push(`  ${key} ${value}`)
  if (entry.master) {
    const command = entry.master.command.map(shellQuote).join(' ')
    // Inside ssh_config's double quotes, " ends the argument and \ escapes: neither may appear.
    if (/["\\]/.test(command)) throw unwritable('the akm-access command', command)
    lines.push(
      '# Password login: start (once) the master connection that akm-access authenticates through its askpass hook;',
      '# the password is never written anywhere. `ssh -O exit ' + entry.host + '` closes it.',
      `Match originalhost ${entry.host} exec "${escapePercent(command)}"`,
      `  ControlPath ${configPath(entry.master.controlPath)}`,
    )
  }
  lines.push(endMarker(entry.host))
  return `${lines.join('\n')}\n`
}

const managedHeader = [
  '# Managed by akm-access (akm-access ssh-config --write): Host entries for Akamas management pods.',
  '# Each block between its >>> and <<< markers is replaced when akm-access writes that host again.',
  '',
].join('\n')

/** `text` (our managed file, possibly empty) with the host's block replaced, or added at the end. */
export function upsertHostBlock(text: string, host: string, block: string): string {
  const base = text.trim() === '' ? managedHeader : text
  const range = blockRange(base, host)
  if (range) return base.slice(0, range.start) + block + base.slice(range.end)
  const separator = base.endsWith('\n\n') ? '' : base.endsWith('\n') ? '\n' : '\n\n'
  return `${base}${separator}${block}`
}

/** `text` without the host's block; undefined when there was none. */
export function removeHostBlock(text: string, host: string): string | undefined {
  const range = blockRange(text, host)
  if (!range) return undefined
  return (text.slice(0, range.start) + text.slice(range.end)).replace(/\n{3,}/g, '\n\n').replace(/\n+$/, '\n')
}

export function hasHostBlock(text: string, host: string): boolean {
  return blockRange(text, host) !== undefined
}

/** Where the host's block is: from its begin marker to the end of its end marker's line. */
function blockRange(text: string, host: string): { start: number; end: number } | undefined {
  const begin = `${beginMarker(host)}\n`
  const start = text.startsWith(begin) ? 0 : text.indexOf(`\n${begin}`) + 1
  if (start === 0 && !text.startsWith(begin)) return undefined
  const endLine = `\n${endMarker(host)}`
  const endAt = text.indexOf(endLine, start)
  if (endAt < 0) return undefined
  const end = endAt + endLine.length
  return { start, end: text[end] === '\n' ? end + 1 : end }
}

/** The line that includes our file, with the comment that says where it comes from. */
function includeLines(file: string): string {
  return `# Added by akm-access ssh-config: its Host entries (remove these two lines to disable them)\nInclude ${configPath(file)}\n`
}

/**
 * The user's ~/.ssh/config with our Include at the top (it must come before any Host or Match block, or it would
 * apply only inside one), or unchanged if an Include of our file is already there.
 */
export function withInclude(userConfig: string, file: string): string {
  const included = userConfig.split(/\r?\n/).some((line) => {
    const match = /^\s*include\s*=?\s*(.+?)\s*$/i.exec(line)
    if (!match) return false
    return match[1]!.split(/\s+/).some((pattern) => unquote(pattern) === file)
  })
  if (included) return userConfig
  // Separate from the user's first line without touching it.
  return `${includeLines(file)}${userConfig === '' ? '' : '\n'}${userConfig}`
}

/** The user's ~/.ssh/config without our Include lines. */
export function withoutInclude(userConfig: string, file: string): string {
  const include = includeLines(file)
  if (userConfig.startsWith(`${include}\n`)) return userConfig.slice(include.length + 1)
  if (userConfig.startsWith(include)) return userConfig.slice(include.length)
  return userConfig
}

// ---- files ----

export interface SshConfigPaths {
  /** ~/.ssh */
  sshDir: string
  /** ~/.ssh/config */
  userConfig: string
  /** ~/.ssh/akm-access/config */
  managedConfig: string
}

export function sshConfigPaths(homeDir: string): SshConfigPaths {
  const sshDir = join(homeDir, '.ssh')
  return { sshDir, userConfig: join(sshDir, 'config'), managedConfig: join(sshDir, 'akm-access', 'config') }
}

/** What `--write` changed, for the message. */
export interface WriteResult {
  managedConfig: 'created' | 'updated' | 'unchanged'
  userConfig: 'created' | 'updated' | 'unchanged'
}

/** Adds or replaces the host's block in our file and makes sure ~/.ssh/config includes it. Idempotent. */
export function installHostBlock(paths: SshConfigPaths, host: string, block: string): WriteResult {
  mkdirSync(paths.sshDir, { recursive: true, mode: 0o700 })
  mkdirSync(dirname(paths.managedConfig), { recursive: true, mode: 0o700 })
  const managedBefore = readIfExists(paths.managedConfig)
  const managedAfter = upsertHostBlock(managedBefore ?? '', host, block)
  const userBefore = readIfExists(paths.userConfig)
  const userAfter = withInclude(userBefore ?? '', paths.managedConfig)
  // Ours first: the Include must never point at a file that is not there yet.
  if (managedAfter !== managedBefore) writeFileAtomic(paths.managedConfig, managedAfter)
  if (userAfter !== userBefore) writeFileAtomic(paths.userConfig, userAfter)
  return {
    managedConfig: managedBefore === undefined ? 'created' : managedAfter === managedBefore ? 'unchanged' : 'updated',
    userConfig: userBefore === undefined ? 'created' : userAfter === userBefore ? 'unchanged' : 'updated',
  }
}

/** Removes the host's block; when no block is left, our file and the Include go too. Returns false if none. */
export function uninstallHostBlock(paths: SshConfigPaths, host: string): boolean {
  const managed = readIfExists(paths.managedConfig)
  const after = managed === undefined ? undefined : removeHostBlock(managed, host)
  if (after === undefined) return false
  if (after.includes('# >>> akm-access ')) {
    writeFileAtomic(paths.managedConfig, after)
    return true
  }
  // Nothing of ours is left: the Include goes first, so that it never names a missing file.
  const user = readIfExists(paths.userConfig)
  if (user !== undefined) {
    const stripped = withoutInclude(user, paths.managedConfig)
    if (stripped !== user) writeFileAtomic(paths.userConfig, stripped)
  }
  rmSync(paths.managedConfig, { force: true })
  return true
}

export function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw localError(`cannot read ${file}`, error)
  }
}

/**
 * Replaces a file's content all at once (a temporary file renamed over it), so that ssh never reads half of it.
 * A symlinked file (dotfile managers) is written where the link points, and keeps its mode; a new file gets 0600.
 */
export function writeFileAtomic(file: string, content: string, mode = 0o600): void {
  try {
    let target = file
    let keepMode: number | undefined
    try {
      target = realpathSync(file)
      keepMode = statSync(target).mode & 0o777
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    const temporary = `${target}.akm-access-${process.pid}`
    writeFileSync(temporary, content, { mode: keepMode ?? mode })
    chmodSync(temporary, keepMode ?? mode)
    renameSync(temporary, target)
  } catch (error) {
    throw localError(`cannot write ${file}`, error)
  }
}

function localError(what: string, error: unknown): AccessError {
  return new AccessError(`${what}: ${(error as Error).message}`, {
    exitCode: ExitCode.local,
    hint: 'check the permissions of the file and its folder',
    cause: error,
  })
}

// ---- quoting ----

/** A POSIX shell word (ProxyCommand and `Match exec` run through the user's shell). */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_./:=@,+%-]+$/.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** A path as one ssh_config argument. */
export function configPath(path: string): string {
  if (path.includes('"')) throw unwritable('a path', path)
  const escaped = escapePercent(path)
  return /\s/.test(escaped) ? `"${escaped}"` : escaped
}

/** ssh_config expands %-tokens in these values; a literal % is %%. */
function escapePercent(text: string): string {
  return text.replace(/%/g, '%%')
}

function unquote(token: string): string {
  return token.replace(/^"(.*)"$/, '$1')
}

function unwritable(what: string, value: string): AccessError {
  return new AccessError(`${what} cannot be written into an OpenSSH config: ${value}`, {
    exitCode: ExitCode.local,
    hint: 'install akm-access (and your home folder) under a path without double quotes',
  })
}
